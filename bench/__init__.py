"""Benchmark of the azphotosync agent against rclone, AzCopy and a plain SDK uploader (not shipped)."""

"""The contracts both sides share: the blob name, the blob metadata, which files are media."""

"""Restore: catalog -> select -> fetch into a folder that names from the archive cannot leave."""

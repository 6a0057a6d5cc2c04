"""Data derived from the archive for people to look at it (albums, timeline, folders, renditions); never an original."""

"""The Azure Table index: keys and entities, paged reads, the mirror from SQLite, the flags, rebuilds."""

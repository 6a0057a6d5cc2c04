"""The local side: walking the source, hashing, capture dates, and the SQLite index of what is stored."""

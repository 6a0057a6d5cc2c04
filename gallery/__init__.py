"""The private web gallery: one ASGI app served locally by ``azphotosync gallery`` and in the cloud by the
Function App, over the archive's index, renditions and albums (read-only, apart from share links)."""

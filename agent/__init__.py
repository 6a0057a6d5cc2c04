"""The local agent: the ``azphotosync`` command line over :mod:`sync_core`."""

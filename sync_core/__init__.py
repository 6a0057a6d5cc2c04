"""sync_core — the shared library behind the AzPhotoSync agent and the cloud verifier.

The agent's pipeline reads as one module per stage, in the order data flows:

    scanner   walk the source with os.scandir, apply ``exclude`` rules     -> ScanEntry
    planner   compare each entry's stat with the SQLite ``state``          -> WorkItem (new/changed)
    hasher    stream SHA-256 (small files are read once and kept in memory)
    transfer  create-only upload, server-side copy for known content, or
              adopt a blob that already exists with the same content       -> StoreResult
    state     record the confirmed result in SQLite (WAL)
    pipeline  wires the stages together with a bounded worker pool

The contracts both sides share live in ``blobname`` (the blob name), ``blobmeta`` (blob metadata) and
``mediatypes`` (which files are media and their content types). Nothing here imports a CLI toolkit or the
Azure Functions SDK: the agent and the Functions app are thin layers over this package.
"""

__version__ = "0.1.0"

"""sync_core — the shared library behind the AzPhotoSync agent (``agent/``) and the Function App
(``function_app.py``). Nothing here imports a CLI toolkit or the Azure Functions SDK: both are thin layers
over this package. ``docs/architecture.md`` draws the data flow; ``docs/CONTRACTS.md`` names each contract's
owner.

Packages, from the shared rules outwards:

    contracts  the blob name (``blobname``), blob metadata (``blobmeta``), which files are media and their
               content types (``mediatypes``): what the agent, the verifier, restore and the gallery share
    local      the source side: walk (``scanner``, ``exclude``), SHA-256 (``hasher``), capture dates
               (``capture``), the SQLite index of what is stored (``state``)
    storage    access to the service: clients, retries and timeouts (``clients``), adaptive concurrency,
               bandwidth caps, the fast paths (``put_blob``, ``listing``, ``lean_http``, ``direct_http``) and the
               one module that touches the SDKs' private names (``sdk_internals``); access tiers and prices
               (``tiering``)
    index      the Azure Table index: keys, properties and verdicts (``table_index``), paged reads
               (``table_query``), transactions (``table_batch``), the mirror from SQLite (``table_mirror``),
               rebuilds in both directions (``rebuild``)
    sync       one backup run: ``pipeline`` (scan -> plan -> hash -> ``transfer`` -> record -> mirror),
               ``progress``, and ``repair`` (re-upload what the verifier flagged: the closed loop)
    verify     the cloud's check: plan units -> verify one unit (``partition``) -> publish (``reports``),
               as steps (``run``) that the Durable activities and ``azphotosync verify`` both call
    restore    catalog -> select -> fetch (``run``) into a folder names cannot escape (``target``)
    derived    what people look at, never an original: albums, folders, timeline, renditions and their facts

Top level: ``config`` (settings from flags and environment), ``errors`` (the exceptions users see),
``sizes`` (byte counts and rates from text), ``timestamps`` (numbers from files and rows).
"""

__version__ = "0.1.0"

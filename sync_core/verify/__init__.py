"""Verification: the container checked against the Table index, in three steps that the cloud and the CLI
run alike (:class:`~sync_core.verify.run.Verifier` is the only entry point):

1. **plan** (:meth:`~sync_core.verify.run.Verifier.plan`): which prefixes to verify (discovered in the table,
   plus configured ones) and the previous report's byte total that sizes each unit's deep-verify share;
   returns a :class:`~sync_core.verify.summary.Plan`.
2. **verify a unit** (:meth:`~sync_core.verify.run.Verifier.verify_unit`): one partition ``<prefix>/<xx>``
   or sixteen ``<prefix>/<x>`` (:mod:`.partition`): quick and deep verdicts written back to the rows,
   orphans re-indexed; returns a :class:`~sync_core.verify.summary.Summary` of ids and counts and the
   problems. The Functions run one unit per activity and stage the problems in blobs;
   ``azphotosync verify`` runs the units in a thread pool (:meth:`~sync_core.verify.run.Verifier.run_units`)
   and keeps them in memory.
3. **publish** (:meth:`~sync_core.verify.run.Verifier.publish`): the units' summaries added up
   (:func:`~sync_core.verify.summary.run_summary`) become the report document, ``latest.json`` and a
   runs-table row (:mod:`.reports`).

The verdicts (:mod:`.verdicts`) and the values passed between the steps (:mod:`.summary`) are defined once.
This package's ``__init__`` imports nothing, so the index and sync layers may import :mod:`.verdicts`.
"""

"""The values of an index row's ``VerifyStatus`` (docs/CONTRACTS.md), defined once for the verifier, its
reports, the agent's repair step and the Table queries that look for damage.

A :class:`Verdict` is a ``str``: rows, reports and the runs table store exactly these strings.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    ETAG_MISMATCH = "etag_mismatch"
    SHA_MISMATCH = "sha_mismatch"  # SHA-256 metadata differs, or a deep re-hash disagrees with the name
    SHA_MISSING = "sha_missing"
    ORPHAN_REPAIRED = "orphan_repaired"  # row re-created from a blob's self-consistent metadata
    ORPHAN = "orphan"  # a blob with no row that cannot be re-indexed from its metadata (report only)
    # Written by the agent (the only Verify* value it writes) after re-uploading a flagged blob from its local
    # copy; the next verification replaces it with its own verdict.
    REUPLOADED = "reuploaded"


# Verdicts that ask the agent to re-upload the blob.
DAMAGE_VERDICTS = frozenset(
    {Verdict.MISSING, Verdict.SIZE_MISMATCH, Verdict.ETAG_MISMATCH, Verdict.SHA_MISMATCH, Verdict.SHA_MISSING}
)
# Verdicts that make a run unclean: damage, and blobs nobody can account for.
PROBLEM_VERDICTS = DAMAGE_VERDICTS | {Verdict.ORPHAN}
# The verifier's verdicts, in the order a report counts them.
ALL_VERDICTS: tuple[Verdict, ...] = (
    Verdict.OK, Verdict.MISSING, Verdict.SIZE_MISMATCH, Verdict.ETAG_MISMATCH, Verdict.SHA_MISMATCH,
    Verdict.SHA_MISSING, Verdict.ORPHAN_REPAIRED, Verdict.ORPHAN,
)  # fmt: skip

"""What the scanner skips, and why: hidden entries, OS/NAS junk, partial downloads, user globs, non-media.

Every skip has a reason (one of the ``R_*`` names), so a run can count what it left out instead of
silently dropping it. A name whose extension says nothing about its type gets :data:`CHECK_CONTENT`: the
scanner reads its first bytes (:func:`sync_core.contracts.mediatypes.sniff`) once it knows it is a regular file.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from sync_core.contracts.mediatypes import CONFIRM_BY_CONTENT, MEDIA_TYPES, NOT_MEDIA_EXTS

# Folders that hold OS/NAS bookkeeping or generated thumbnails, never the user's originals.
JUNK_DIRS = frozenset(
    {
        "@eadir",  # Synology thumbnails/metadata
        "#recycle",  # Synology recycle bin
        "#snapshot",
        "$recycle.bin",
        "system volume information",
        ".thumbnails",
        "lost+found",
        ".trash",
        ".trashes",
        ".spotlight-v100",
        ".fseventsd",
        ".picasaoriginals",
    }
)
JUNK_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", ".picasa.ini"})
# Temporary and partial downloads: browsers, sync tools, editors (by extension; '~$x' Office lock files;
# LibreOffice's '.~lock.x#' is hidden anyway).
PARTIAL_EXTS = frozenset(
    {".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".swp", ".!sync", ".filepart", ".opdownload"}
)
# The extensions of JUNK_FILES: only names with one of these need the lower-cased set lookup.
_JUNK_FILE_EXTS = frozenset(os.path.splitext(n)[1] for n in JUNK_FILES)

R_HIDDEN = "hidden"
R_SYSTEM = "system or thumbnail file"
R_PARTIAL = "partial download"
R_EXCLUDED = "excluded by --exclude"
R_NOT_MEDIA = "not a photo or video"
CHECK_CONTENT = "unknown extension"  # not a reason: the scanner decides from the content
FOLDER = "(folder)"  # the "extension" under which skipped folders are counted


@dataclass(frozen=True)
class ExcludeRules:
    """``all_files`` drops the media filter; ``globs`` match the relative path or the base name.

    The scanner asks once per entry (100k+ times a run), so the checks are ordered cheapest first and the
    globs are compiled once into one regular expression."""

    all_files: bool = False
    globs: tuple[str, ...] = field(default_factory=tuple)
    _glob_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.globs:
            pattern = "|".join(f"(?:{fnmatch.translate(g)})" for g in self.globs)
            object.__setattr__(self, "_glob_re", re.compile(pattern))

    def skip_dir(self, name: str, relpath: str) -> bool:
        return self.dir_skip_reason(name, relpath) is not None

    def dir_skip_reason(self, name: str, relpath: str) -> str | None:
        if name.startswith("."):
            return R_HIDDEN
        if name.lower() in JUNK_DIRS:
            return R_SYSTEM
        return R_EXCLUDED if self._glob_hit(name, relpath) else None

    def skip_file(self, name: str, relpath: str) -> bool:
        """True when the name alone excludes the file (a name that needs its content read counts as skipped)."""
        return self.file_skip_reason(name, relpath) is not None

    def file_skip_reason(self, name: str, relpath: str) -> str | None:
        """Why the file is left out by its name; :data:`CHECK_CONTENT` when only its bytes can tell."""
        if name.startswith((".", "~$")):
            return R_HIDDEN
        ext = _extension(name)
        if ext in PARTIAL_EXTS:
            return R_PARTIAL
        if ext in _JUNK_FILE_EXTS and name.lower() in JUNK_FILES:
            return R_SYSTEM
        if self._glob_re is not None and self._glob_hit(name, relpath):
            return R_EXCLUDED
        if self.all_files or (ext in MEDIA_TYPES and ext not in CONFIRM_BY_CONTENT):
            return None
        return R_NOT_MEDIA if ext in NOT_MEDIA_EXTS else CHECK_CONTENT

    def _glob_hit(self, name: str, relpath: str) -> bool:
        m = self._glob_re
        return m is not None and (m.match(relpath) is not None or m.match(name) is not None)


def _extension(name: str) -> str:
    """Lower-cased extension with its dot, as :func:`sync_core.contracts.mediatypes.extension` (for names not starting
    with a dot), without ``os.path.splitext``'s overhead."""
    i = name.rfind(".")
    return name[i:].lower() if i > 0 else ""

"""What the scanner skips: hidden entries, OS/NAS junk, partial downloads, user globs, non-media."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from .mediatypes import MEDIA_TYPES

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
        return name.startswith(".") or name.lower() in JUNK_DIRS or self._glob_hit(name, relpath)

    def skip_file(self, name: str, relpath: str) -> bool:
        if name.startswith((".", "~$")):
            return True
        ext = _extension(name)
        if ext in PARTIAL_EXTS or (ext in _JUNK_FILE_EXTS and name.lower() in JUNK_FILES):
            return True
        if not self.all_files and ext not in MEDIA_TYPES:
            return True
        return self._glob_re is not None and self._glob_hit(name, relpath)

    def _glob_hit(self, name: str, relpath: str) -> bool:
        m = self._glob_re
        return m is not None and (m.match(relpath) is not None or m.match(name) is not None)


def _extension(name: str) -> str:
    """Lower-cased extension with its dot, as :func:`sync_core.mediatypes.extension` (for names not starting
    with a dot), without ``os.path.splitext``'s overhead."""
    i = name.rfind(".")
    return name[i:].lower() if i > 0 else ""

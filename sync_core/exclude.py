"""What the scanner skips: hidden entries, OS/NAS junk, partial downloads, user globs, non-media."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from .mediatypes import is_media

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
# Temporary and partial downloads: browsers, sync tools, editors.
_PARTIAL_RE = re.compile(
    r"(\.(part|partial|crdownload|download|tmp|temp|swp|!sync|filepart|opdownload)$)|(^~\$)|(^\.~lock\.)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExcludeRules:
    """``all_files`` drops the media filter; ``globs`` match the relative path or the base name."""

    all_files: bool = False
    globs: tuple[str, ...] = field(default_factory=tuple)

    def skip_dir(self, name: str, relpath: str) -> bool:
        return name.startswith(".") or name.lower() in JUNK_DIRS or self._glob_hit(name, relpath)

    def skip_file(self, name: str, relpath: str) -> bool:
        if name.startswith(".") or name.lower() in JUNK_FILES or _PARTIAL_RE.search(name):
            return True
        if self._glob_hit(name, relpath):
            return True
        return not self.all_files and not is_media(name)

    def _glob_hit(self, name: str, relpath: str) -> bool:
        return any(fnmatch.fnmatchcase(relpath, g) or fnmatch.fnmatchcase(name, g) for g in self.globs)

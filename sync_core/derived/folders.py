"""Folders: every directory of the source tree is an album, with no work from the user.

Built from the items' paths alone (the index already holds them), so a folder exists exactly while it holds
a current file somewhere below it; its ancestors up to the library root (``""``) are folders too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sync_core.derived.timeline import Item


@dataclass
class Folder:
    path: str  # "" is the library root
    items: list[Item] = field(default_factory=list)  # files directly in it, by path
    subfolders: list[str] = field(default_factory=list)  # paths of the folders directly in it
    total: int = 0  # files in it and below

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "files": len(self.items), "total": self.total,
                             "subfolders": self.subfolders}  # fmt: skip
        if items:
            d["items"] = [{"path": i.relpath, "sha256": i.sha256, "size": i.size} for i in self.items]
        return d


def folders(items: Iterable[Item]) -> dict[str, Folder]:
    """Every folder of the tree, by path, sorted by path."""
    out: dict[str, Folder] = {"": Folder("")}
    for item in items:
        path = item.folder
        folder = out.get(path) or _add(out, path)
        folder.items.append(item)
        while True:  # counted in every ancestor up to the root
            out[path].total += 1
            if not path:
                break
            path = path.rpartition("/")[0]
    for f in out.values():
        f.items.sort(key=lambda i: i.relpath)
        f.subfolders.sort()
    return dict(sorted(out.items()))


def _add(out: dict[str, Folder], path: str) -> Folder:
    """A new folder, linked into its parent (created too when new)."""
    folder = out[path] = Folder(path)
    parent = path.rpartition("/")[0]
    (out.get(parent) or _add(out, parent)).subfolders.append(path)
    return folder

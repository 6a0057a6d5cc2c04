"""Walk the source tree with ``os.scandir`` and yield the files to consider, with their stat fields.

Symlinks are not followed (reported as skipped). Only a file that is positively absent — its folder was
listed and the name is not there, or ``stat`` says it does not exist — may be taken for deleted: a folder
that cannot be listed is remembered as *incomplete*, and an entry whose type or ``stat`` fails (EACCES in a
folder that can be read but not searched, EIO, ESTALE) as *unreadable*; both are reported as errors and
what lies under them stays backed up as it was.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

from sync_core.contracts.mediatypes import extension, read_head, sniff
from sync_core.local.exclude import CHECK_CONTENT, FOLDER, R_NOT_MEDIA, ExcludeRules


class ScanEntry(NamedTuple):
    """Immutable like a frozen dataclass, but built ~5x faster: one is made per file of every scan."""

    relpath: str  # '/'-separated, exactly as on disk (surrogate-escaped if not UTF-8)
    dirpath: str  # the folder's path, one string shared by the folder's files (a first sync holds every entry)
    size: int
    mtime_ns: int
    inode: int
    dev: int = 0  # st_dev: with the inode, which file the scan saw (checked again when it is opened)

    @property
    def path(self) -> str:
        """The absolute path to open."""
        folder, name = self.dirpath, self.relpath.rpartition("/")[2]
        return folder + name if folder.endswith("/") else f"{folder}/{name}"  # as os.scandir joins them


_new_entry = tuple.__new__  # ScanEntry(...) without the keyword-handling __new__ (the scan's hot loop)
_by_name = attrgetter("name")


@dataclass(slots=True)
class ScanProblem:
    relpath: str
    reason: str
    is_error: bool  # True: something the user must fix (unreadable); False: informational (symlink)


@dataclass
class ScanResult:
    """What a full scan left behind besides the entries: problems and folders it could not read."""

    problems: list[ScanProblem] = field(default_factory=list)
    incomplete_dirs: list[str] = field(default_factory=list)  # folders (or entries of unknown type) not read
    unreadable: set[str] = field(default_factory=set)  # files whose stat failed for another reason than ENOENT
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)  # reason -> extension -> files

    def leave_out(self, reason: str, ext: str) -> None:
        """Count an entry the rules skipped (a folder counts once, under :data:`FOLDER`)."""
        by_ext = self.left_out.setdefault(reason, {})
        key = ext or "(none)"
        by_ext[key] = by_ext.get(key, 0) + 1

    @property
    def left_out_total(self) -> int:
        return sum(n for by_ext in self.left_out.values() for n in by_ext.values())

    def covers(self, relpath: str) -> bool:
        """True when the scan would have seen ``relpath`` had it existed: it is not a file whose stat failed
        and does not lie under a folder the scan could not read."""
        if relpath in self.unreadable:
            return False
        return not any(relpath == d or relpath.startswith(d + "/") for d in self.incomplete_dirs)


def _list_dir(path: str) -> list[os.DirEntry[str]]:
    """A folder's entries in name order (module-level so that tests can inject listing errors)."""
    with os.scandir(path) as it:
        return sorted(it, key=_by_name)


def _lstat(entry: os.DirEntry[str]) -> os.stat_result:
    """An entry's own stat, not following a symlink (module-level so that tests can inject errors)."""
    return entry.stat(follow_symlinks=False)


def scan(
    root: str,
    rules: ExcludeRules,
    result: ScanResult,
    *,
    on_problem: Callable[[ScanProblem], None] | None = None,
) -> Iterator[ScanEntry]:
    """Yield regular files under ``root`` depth-first in name order (stable output, stable progress)."""

    def problem(relpath: str, reason: str, is_error: bool) -> None:
        p = ScanProblem(relpath, reason, is_error)
        result.problems.append(p)
        if on_problem:
            on_problem(p)

    file_reason, leave_out = rules.file_skip_reason, result.leave_out
    list_dir, lstat = _list_dir, _lstat
    stack: list[tuple[str, str]] = [(root, "")]
    devs: dict[int, int] = {}
    while stack:
        dirpath, reldir = stack.pop()
        try:
            entries = list_dir(dirpath)
        except OSError as exc:
            problem(reldir or ".", f"cannot read folder: {exc.strerror or exc}", True)
            result.incomplete_dirs.append(reldir)
            continue
        prefix = f"{reldir}/" if reldir else ""
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            name = entry.name
            rel = prefix + name
            typed = False  # is_symlink/is_dir answered: the entry is not a folder
            try:
                if entry.is_symlink():
                    problem(rel, "symlink not followed", False)
                    continue
                # The folder type comes with the listing (d_type): no lstat for folders, and none for the
                # files the rules exclude by name.
                if entry.is_dir(follow_symlinks=False):
                    dir_reason = rules.dir_skip_reason(name, rel)
                    if dir_reason is None:
                        subdirs.append((entry.path, rel))
                    else:
                        leave_out(dir_reason, FOLDER)
                    continue
                typed = True
                reason = file_reason(name, rel)
                if reason is not None and reason is not CHECK_CONTENT:
                    leave_out(reason, extension(name))
                    continue
                st = lstat(entry)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    continue  # vanished between listing and stat: positively absent
                problem(rel, f"cannot stat: {exc.strerror or exc}", True)
                if typed:
                    result.unreadable.add(rel)
                else:  # the type itself is unknown: it may be a folder, keep everything under it too
                    result.incomplete_dirs.append(rel)
                continue
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):  # replaced by a folder since the listing
                    if not rules.skip_dir(name, rel):
                        subdirs.append((entry.path, rel))
                    continue
                problem(rel, "not a regular file (FIFO, socket or device): skipped", False)
                continue
            if reason is CHECK_CONTENT:
                head = read_head(entry.path)
                if not head and st.st_size:  # could not be read: not known to be absent, nor to be non-media
                    problem(rel, "cannot read its first bytes to tell whether it is media", True)
                    result.unreadable.add(rel)
                    continue
                if sniff(head) is None:
                    leave_out(R_NOT_MEDIA, extension(name))
                    continue
            dev = devs.setdefault(st.st_dev, st.st_dev)  # one int per device, not one per file
            yield _new_entry(ScanEntry, (rel, dirpath, st.st_size, st.st_mtime_ns, st.st_ino, dev))
        stack.extend(reversed(subdirs))

"""The planner's index reads: the stat tuples of every file, then full rows of the changed ones only."""

from __future__ import annotations

from pathlib import Path

from sync_core.local.state import FileRow, StateDB


def _row(i: int) -> FileRow:
    sha = f"{i:064x}"
    return FileRow(f"d/{i:05d}.jpg", 1000 + i, 2000 + i, 3000 + i, sha, f"p/{sha[:2]}/{sha}/d/{i:05d}.jpg")


def test_load_stats_and_file_rows_agree_with_load_files(tmp_path: Path) -> None:
    state = StateDB(tmp_path / "state")
    rows = [_row(i) for i in range(1200)]  # more than one 500-path batch of file_rows
    for r in rows:
        assert state.insert_file_if_absent(r)
    state.commit()

    stats = state.load_stats()
    assert stats == {r.relpath: (r.relpath, r.size, r.mtime_ns, r.inode) for r in rows}

    wanted = [r.relpath for r in rows[::7]] + ["not/in/the/index.jpg"]
    got = state.file_rows(iter(wanted))
    assert got == {r.relpath: r for r in rows[::7]}
    assert got == {k: v for k, v in state.load_files().items() if k in set(wanted)}
    assert state.file_rows([]) == {}
    state.close()


def test_close_closes_the_reader_of_every_thread(tmp_path: Path) -> None:
    """A worker thread's reader left open would be closed by the garbage collector at an arbitrary later
    moment, checkpointing and removing the WAL then (a damaged index's WAL is evidence to keep)."""
    import gc
    import sqlite3
    import threading

    state = StateDB(tmp_path / "state")
    workers = [threading.Thread(target=state.blob_for_sha, args=("0" * 64,)) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    state.close()
    db = str(state.path)
    still_open = []
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                files = [row[2] for row in obj.execute("PRAGMA database_list")]
            except sqlite3.ProgrammingError:  # closed
                continue
            if db in files:
                still_open.append(obj)
    assert still_open == []


def test_close_leaves_the_reader_of_a_thread_still_running(tmp_path: Path) -> None:
    """A pool abandoned on Ctrl-C or a fatal error leaves workers running: closing the connection one of them
    is using is undefined behaviour in SQLite (it crashed the process with SIGSEGV), so its reader stays."""
    import threading

    state = StateDB(tmp_path / "state")
    opened, closed = threading.Event(), threading.Event()
    seen: list[object] = []

    def worker() -> None:
        state.blob_for_sha("0" * 64)  # opens this thread's reader
        opened.set()
        closed.wait(10)
        try:
            seen.append(state.blob_for_sha("1" * 64))  # the same reader, after close() in the main thread
        except Exception as exc:  # a closed reader raises ProgrammingError (or worse, mid-query)
            seen.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    assert opened.wait(10)
    state.close()
    closed.set()
    t.join(10)
    assert seen == [None]

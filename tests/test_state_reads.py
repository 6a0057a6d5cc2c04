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


def test_close_closes_the_readers_other_threads_opened(tmp_path: Path) -> None:
    """Workers read through their own connections; ``close`` closes them all at once, not whenever the garbage
    collector gets to them (until then SQLite keeps the -wal and -shm of a file that may be moved aside)."""
    import gc
    import threading

    state = StateDB(tmp_path / "s")
    state.commit()
    worker = threading.Thread(target=state.get_blob, args=("photos/x",))
    worker.start()
    worker.join()
    wal = state.path.with_name(state.path.name + "-wal")
    gc.disable()  # a sqlite3 connection sits in a reference cycle: only close() frees it promptly
    try:
        assert wal.exists()
        state.close()
        assert not wal.exists()  # the last connection closed: SQLite removed its write-ahead log
    finally:
        gc.enable()

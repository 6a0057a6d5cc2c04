"""Benchmark azphotosync against rclone, AzCopy and a plain SDK thread pool on one Azurite it starts.

    .venv/bin/python -m bench.run            # full: medians of 3 runs, both modes (~40 min on 2 cores, ~40 GB free)
    .venv/bin/python -m bench.run --quick    # small corpora, 1 run, both modes (~5 min): for iteration

Two modes (``bench/measure.py``): **pinned** (Azurite on one core, the tool under test on the other) and
**shared** (both may use both cores, the first round's method). Every timed command starts after the previous
one's writes have settled; tools and modes rotate between rounds. What runs where is ``bench/plan.py``; the
targets and tables are ``bench/targets.py``. Results: a progress line per sample, a final table on stdout and
JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from agent.emulator import ACCOUNT, ACCOUNT_KEY, Azurite, start_azurite
from sync_core.index import flags

from . import corpora, plan, tools
from .measure import Mode, Sample, ToolFailed, emulator_autosaves, make_modes, median, run, schedule, wrote_now
from .rows import seed_rows
from .targets import render_text, summarize, targets

REPO = tools.REPO
RESULTS = REPO / "bench" / "results"
MB = 1_000_000


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.az: Azurite | None = None
        self.results: dict[str, Any] = {}
        self.modes = {m.name: m for m in make_modes(args.modes, os.sched_getaffinity(0))}
        self.has_verify = "verify" in tools.agent_help("")

    def fresh_emulator(self, case: str) -> Azurite:
        """Stop the emulator of the previous case and start an empty one: every case (and each tool's 100k
        library) starts on an emulator holding nothing else, so no command pays for what an earlier one
        left (Azurite's Put Blob and listings slow as it holds more). The many-file cases keep it in memory
        (``plan.IN_MEMORY_CASES``), where on disk it would rewrite its whole metadata store (100k blobs, 1M
        index rows) as JSON on every autosave; the few-large-file cases keep it on disk, as in-memory
        Azurite frees a deleted blob's bytes only on its 10-minute collection, and the big case writes
        12 GiB in less."""
        self.stop_emulator()
        folder = self.work / "azurite"
        shutil.rmtree(folder, ignore_errors=True)
        self.az = start_azurite(folder, in_memory=case in plan.IN_MEMORY_CASES)
        emulator_autosaves(case not in plan.IN_MEMORY_CASES)
        self.service = BlobServiceClient.from_connection_string(self.az.connection_string)
        self.tables = TableServiceClient.from_connection_string(self.az.connection_string)
        return self.az

    def stop_emulator(self) -> None:
        if self.az is not None:
            self.az.stop()
            self.az = None

    @property
    def emulator(self) -> Azurite:
        if self.az is None:
            raise RuntimeError("no emulator: call fresh_emulator() first")
        return self.az

    # -- plumbing ----------------------------------------------------------------------------------
    def cell(self, case: str, measure: str) -> dict[str, tuple[str, ...]]:
        """Tools per mode for a cell of the plan, narrowed by --tools and --modes."""
        c = plan.cell(case, measure, tools=self.args.tools, modes=tuple(self.modes), all_peers=self.args.all_peers)
        return c.by_mode

    def order(self, case: str, measure: str) -> list[tuple[int, str, str]]:
        """(round, mode, tool) in run order for a cell: modes and tools rotated between rounds."""
        return schedule(self.args.runs, self.cell(case, measure))

    def target(self, case: str, tool: str, tag: str) -> tools.Target:
        name = f"{case}-{tool}-{tag}".lower()
        table = "".join(ch for ch in f"b{case}{tool}{tag}" if ch.isalnum())
        state = self.work / "state" / name
        shutil.rmtree(state, ignore_errors=True)
        az = self.emulator
        t = tools.Target(az.blob_url, ACCOUNT, ACCOUNT_KEY, az.connection_string, name, table, state)
        self.service.create_container(name)
        wrote_now()
        return t

    def drop(self, t: tools.Target) -> None:
        """Delete a finished container and its index table (untimed), so the emulator's memory stays small
        and no later command of the case pays for them."""
        self.service.delete_container(t.container)
        self.tables.delete_table(t.table)  # no error when the tool made none
        wrote_now()

    def blob_count(self, t: tools.Target, prefix: str | None = None) -> int:
        return sum(1 for _ in self.service.get_container_client(t.container).list_blobs(name_starts_with=prefix))

    def log(self, *parts: str) -> Path:
        return self.work / "logs" / ("-".join(parts) + ".log")

    def timed(self, cmd: list[str], env: dict[str, str], log: Path, mode: str, *, writes: bool, ok=(0,)) -> Sample:
        where = self.modes.get(mode) or Mode("shared")  # untimed loads run unpinned whatever --modes says
        return run(cmd, env=env, log=log, settle_pid=self.emulator.pid, mode=where, writes=writes, ok=ok)

    def sync(self, tool: str, src: Path, t: tools.Target, *, rerun: bool, tag: str, mode: str) -> Sample:
        w = self.work
        if tool == "azphotosync":
            cmd, env = tools.agent_sync(src, t), tools.agent_env(w, t)
        elif tool == "rclone":
            cmd, env = tools.rclone_copy(src, t), tools.rclone_env(w, t)
        elif tool == "azcopy":
            cmd = tools.azcopy_sync(src, t) if rerun else tools.azcopy_copy(src, t)
            env = tools.azcopy_env(w)
        else:
            cmd, env = tools.sdk_upload(src, t), tools.sdk_env(w, t)
        return self.timed(cmd, env, self.log(t.container, tag, mode), mode, writes=not rerun)

    def record(
        self, mode: str, case: str, tool: str, measure: str, s: Sample, nbytes: int = 0, rows: int = 0,
        to_disk: float | None = None,
    ) -> None:  # fmt: skip
        by_measure = self.results.setdefault(mode, {}).setdefault(case, {}).setdefault(tool, {})
        slot = by_measure.setdefault(measure, {"wall": [], "cpu": [], "user": [], "system": [], "rss_mb": []})
        slot["wall"].append(round(s.wall, 3))
        slot["cpu"].append(round(s.cpu, 2))
        slot["user"].append(round(s.user, 2))
        slot["system"].append(round(s.system, 2))
        slot["rss_mb"].append(round(s.rss_mb, 1))
        slot.setdefault("settled_s", []).append(round(s.settled, 1))
        if nbytes:
            slot.setdefault("mb_s", []).append(round(nbytes / MB / s.wall, 1))
        if rows:
            slot.setdefault("rows_s", []).append(round(rows / s.wall))
        if to_disk is not None:  # the command, then `sync` until its writes are on disk
            slot.setdefault("to_disk_s", []).append(round(to_disk, 3))
        if tool == "azphotosync" and measure == "first_sync":
            summary = agent_summary(Path(s.log))
            if summary is not None:  # the Table mirror's share of the wall time (its cost)
                slot.setdefault("mirror_s", []).append(round(float(summary.get("mirror_seconds", 0.0)), 3))
        print(
            f"  {mode:6} {case:6} {measure:17} {tool:12} {s.wall:8.2f}s {s.cpu:7.2f}s CPU {s.rss_mb:6.0f} MB RSS"
            f"  (settled {s.settled:.1f}s)",
            flush=True,
        )

    def load_rclone_copy(self, src: Path, t: tools.Target, files: int) -> tools.Target:
        """Add rclone's copy of the corpus under ``rclone/`` of ``t`` (untimed, shared mode): the peers'
        restores and checks then read the same container as ours."""
        t = dataclasses.replace(t, rclone_dir="rclone")
        s = self.sync("rclone", src, t, rerun=False, tag="load-rclone", mode="shared")
        print(f"  (rclone copy loaded beside ours in {s.wall:.0f}s, untimed)", flush=True)
        if self.blob_count(t, "rclone/") != files:
            raise ToolFailed(f"rclone loaded {self.blob_count(t, 'rclone/')} blobs of {files} (log {s.log})")
        return t

    def reload_ours(self, case: str, src: Path, kept: tools.Target, files: int) -> tools.Target:
        """Our copy again, on an emulator of its own (untimed, shared mode), for the restores of an in-memory
        case. In-memory Azurite collects deleted data every 10 minutes from its start and answers nothing
        while it does (minutes, after a case's deleted copies); the tiny case's first syncs and restores
        together ran past that (2026-12-08), so its restores start on an emulator that has not run long."""
        self.fresh_emulator(case)
        t = self.target(case, "azphotosync", "restore")
        s = self.sync("azphotosync", src, t, rerun=False, tag="load-ours", mode="shared")
        print(f"  (fresh emulator for the restores; our copy loaded in {s.wall:.0f}s, untimed)", flush=True)
        if self.blob_count(t) != files:
            raise ToolFailed(f"azphotosync loaded {self.blob_count(t)} blobs of {files} (log {s.log})")
        return t

    # -- cases -------------------------------------------------------------------------------------
    def first_sync_case(self, case: str, src: Path, files: int, nbytes: int) -> None:
        """Median first sync of a corpus per tool and mode, each into a fresh container and state dir. Our
        last copy is kept, rclone's copy is added beside it, and the restores (and for media the deep
        verification) read that one container."""
        kept: tools.Target | None = None
        for rep, mode, tool in self.order(case, "first_sync"):
            t = self.target(case, tool, f"r{rep}{mode[0]}")
            s = self.sync(tool, src, t, rerun=False, tag="first", mode=mode)
            got = self.blob_count(t)
            if got != files:
                raise ToolFailed(f"{tool} stored {got} blobs of {files} for {case} (log {s.log})")
            self.record(mode, case, tool, "first_sync", s, nbytes)
            if tool == "azphotosync":
                if kept is not None:
                    self.drop(kept)
                kept = t
            else:
                self.drop(t)
        if kept is None:
            return
        if case in plan.IN_MEMORY_CASES:
            kept = self.reload_ours(case, src, kept, files)
        shared = self.load_rclone_copy(src, kept, files)
        if case == "media":
            self.deep_verify_case(src, shared, nbytes)
        self.restore_case(case, shared, files, nbytes)
        self.drop(shared)

    def restore_case(self, case: str, t: tools.Target, files: int, nbytes: int) -> None:
        """Restore into an empty folder: ours from its copy (SHA-256 of every file checked before it is
        moved into place), ``rclone copy`` and ``azcopy copy`` from rclone's copy in the same container.
        Beside the command's wall time, its time "to disk": the command and then ``sync`` (ours flushes every
        file before it takes its name; the peers leave their files in the page cache when they exit). Every
        restored folder is counted and removed (untimed)."""
        for rep, mode, tool in self.order(case, "restore"):
            dest = self.work / "restore" / f"{case}-{tool}"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if tool == "azphotosync":
                cmd, env = tools.agent_restore(dest, t), tools.agent_env(self.work, t)
            elif tool == "rclone":
                cmd, env = tools.rclone_restore(dest, t), tools.rclone_env(self.work, t)
            else:
                cmd, env = tools.azcopy_restore(dest, t), tools.azcopy_env(self.work)
            s = self.timed(cmd, env, self.log(t.container, f"restore-{tool}{rep}", mode), mode, writes=False)
            t0 = time.monotonic()
            os.sync()  # what the tool left in the page cache reaches the disk: the restore "to disk"
            to_disk = s.wall + time.monotonic() - t0
            got = corpora.corpus_bytes(dest)
            if got != (files, nbytes):
                raise ToolFailed(f"{tool} restored {got[0]} files / {got[1]} bytes of {files} / {nbytes} (log {s.log})")
            self.record(mode, case, tool, "restore", s, nbytes, to_disk=to_disk)
            shutil.rmtree(dest)

    def deep_verify_case(self, src: Path, t: tools.Target, nbytes: int) -> None:
        """Deep verification of the media library: every blob downloaded and re-hashed (``--deep-budget``
        above the library size) against ``rclone check --download`` (downloads and compares bytes)."""
        budget = f"{nbytes * 2 // MB}MB"
        for rep, mode, tool in self.order("media", "verify_deep"):
            if tool == "azphotosync" and self.has_verify:
                s = self.agent_verify(t, f"deep-ours{rep}", mode, "--deep-budget", budget)
            elif tool == "rclone":
                cmd = [*tools.rclone_check(src, t), "--download"]
                log = self.log(t.container, f"deep-rclone{rep}", mode)
                s = self.timed(cmd, tools.rclone_env(self.work, t), log, mode, writes=False)
            else:
                continue
            self.record(mode, "media", tool, "verify_deep", s, nbytes)

    def agent_verify(self, t: tools.Target, tag: str, mode: str, *flags: str) -> Sample:
        cmd = [str(tools.AGENT), "verify", "--state-dir", str(t.state_dir), "--container", t.container,
               "--table", t.table, "--source-id", "bench", "--json", *flags]  # fmt: skip
        # Verification writes verdicts only where they change: after the first run, none.
        s = self.timed(
            cmd, tools.agent_env(self.work, t), self.log(t.container, tag, mode), mode, writes=True, ok=(0, 1)
        )
        if s.rc != 0:
            raise ToolFailed(f"verify found problems in a fresh copy (log {s.log})")
        return s

    def scale_case(self, src: Path, files: int, nbytes: int) -> None:
        """The 100k library, one tool at a time, each on an empty emulator of its own: rclone loads its copy
        (one timed sample), the rclone and AzCopy reruns run on it (AzCopy's ``sync`` compares
        last-modified times, so it takes rclone's copy as up to date) and ``rclone check`` reads it; then
        a fresh emulator, ours loads (one sample), our reruns and our quick verifications run. So neither
        load, rerun nor check pays for the other tool's 100k blobs (the first run of this method loaded
        ours second into the container holding rclone's copy and measured ours at a third of its speed).
        One-edit reruns and AzCopy's own 100k upload inform no target and are not run."""
        case = "scale"
        loads = self.cell(case, "first_sync")
        reruns = self.cell(case, "rerun_unchanged")
        verifies = self.cell(case, "verify_shared")
        for k, tool in enumerate(("rclone", "azphotosync")):  # each loads even untimed: the rest needs it
            if k:
                self.fresh_emulator(case)
            t = dataclasses.replace(self.target(case, tool, "x"), rclone_dir="rclone")
            timed_in = [m for m, names in loads.items() if tool in names]
            mode = timed_in[0] if timed_in else "shared"
            s = self.sync(tool, src, t, rerun=False, tag=f"load-{tool}", mode=mode)
            prefix = "rclone/" if tool == "rclone" else "photos/"
            if self.blob_count(t, prefix) != files:
                raise ToolFailed(f"{tool} stored {self.blob_count(t, prefix)} blobs of {files} (log {s.log})")
            if timed_in:
                self.record(mode, case, tool, "first_sync", s, nbytes)
            else:
                print(f"  (scale: {tool} copy loaded in {s.wall:.0f}s, untimed)", flush=True)
            ours = tool == "azphotosync"

            def on_this_copy(cell: dict[str, tuple[str, ...]], ours: bool = ours) -> dict[str, tuple[str, ...]]:
                """The cell's tools that read the copy just loaded (ours, or the peers on rclone's)."""
                return {m: tuple(x for x in ts if (x == "azphotosync") == ours) for m, ts in cell.items()}

            self.reruns(src, t, on_this_copy(reruns))
            for rep, vmode, vtool in schedule(self.args.runs, on_this_copy(verifies)):
                if vtool == "azphotosync" and self.has_verify:
                    s = self.agent_verify(t, f"verify{rep}", vmode)
                elif vtool == "rclone":
                    s = self.timed(tools.rclone_check(src, t), tools.rclone_env(self.work, t),
                                   self.log(t.container, f"check{rep}", vmode), vmode, writes=False)  # fmt: skip
                else:
                    continue
                self.record(vmode, case, vtool, "verify_shared", s, rows=files)
            self.drop(t)

    def reruns(self, src: Path, t: tools.Target, by_mode: dict[str, tuple[str, ...]]) -> None:
        for rep, mode, tool in schedule(self.args.runs, by_mode):
            s = self.sync(tool, src, t, rerun=True, tag=f"same-{tool}{rep}", mode=mode)
            self.record(mode, "scale", tool, "rerun_unchanged", s)

    def rows_case(self, src: Path, counts: tuple[int, ...]) -> None:
        """The clean rerun as the index grows: our copy of a small library, then synthetic index rows
        seeded (untimed) under the same prefix up to each count, and the unchanged rerun timed at each."""
        t = self.target("rows", "azphotosync", "x")
        s = self.sync("azphotosync", src, t, rerun=False, tag="load", mode="shared")
        have = plan.ROWS_SOURCE_FILES
        print(f"  (rows: {have} real files synced in {s.wall:.1f}s, untimed)", flush=True)
        table = self.tables.get_table_client(t.table)
        flags.mark_ready(table, ["photos/bench"])  # as after a verification of the (healthy) library
        for n in counts:
            t0 = time.monotonic()
            seed_rows(table, "photos/bench", "bench", start=have, stop=n)
            wrote_now()
            print(f"  (rows: seeded to {n:,} index rows in {time.monotonic() - t0:.0f}s, untimed)", flush=True)
            have = max(have, n)
            for rep, mode, _tool in schedule(self.args.runs, self.cell("rows", "rerun_rows")):
                s = self.sync("azphotosync", src, t, rerun=True, tag=f"rows{n}-{rep}", mode=mode)
                self.record(mode, "rows", "azphotosync", f"rerun_rows_{n}", s, rows=n)
        self.drop(t)

    def hash_case(self, path: Path) -> None:
        """SHA-256 throughput of the agent's hasher against raw hashlib, on a warm page cache."""
        from sync_core.local.hasher import hash_file

        size = path.stat().st_size
        buf = os.urandom(64 * 1024 * 1024)
        out: dict[str, list[float]] = {"hashlib_memory": [], "hashlib_file": [], "agent_hash_file": []}
        hash_file(str(path), size, path.stat().st_mtime_ns)  # warm the cache
        for _ in range(max(3, self.args.runs)):
            t0 = time.perf_counter()
            hashlib.sha256(buf).hexdigest()
            out["hashlib_memory"].append(len(buf) / MB / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            h = hashlib.sha256()
            with open(path, "rb", buffering=0) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out["hashlib_file"].append(size / MB / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            st = path.stat()
            hash_file(str(path), st.st_size, st.st_mtime_ns)
            out["agent_hash_file"].append(size / MB / (time.perf_counter() - t0))
        self.results.setdefault("shared", {})["hash"] = {
            k: {"throughput": {"mb_s": [round(v, 1) for v in vals]}} for k, vals in out.items()
        }
        for k, vals in out.items():
            print(f"  hash   {k:20} {median(vals):8.1f} MB/s", flush=True)


# -- summary ---------------------------------------------------------------------------------------
def agent_summary(log: Path) -> dict[str, Any] | None:
    """The agent's ``--json`` end summary from a run's log (stdout and stderr share the file)."""
    text = log.read_text(errors="replace")
    start = text.find("\n{\n")
    if start < 0:
        return None
    try:
        return json.loads(text[start + 1 : text.rindex("\n}") + 2])
    except ValueError:
        return None


def write_results(out: Path, meta: dict[str, Any], results: dict[str, Any], t_start: float, *, final: bool) -> str:
    meta["seconds"] = round(time.monotonic() - t_start, 1)
    meta["complete"] = final
    summary = summarize(results)
    tgt = targets(summary)
    m = meta["machine"]
    title = (f"# {meta['date']}  {m['cpu']}  nproc={m['nproc']}  {meta['mode']}, median of {meta['runs']}, "
             f"modes {'+'.join(meta['modes'])}, {meta['seconds'] / 60:.0f} min")  # fmt: skip
    table = render_text(title, summary, tgt)
    doc = {"meta": meta, "samples": results, **summary, "targets": tgt, "table": table}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return table


def git_describe() -> str:
    """The commit measured, with '+dirty' when the working tree differs from it (the agent runs from it)."""

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "sync_core", "agent")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_mb": mem, "kernel": platform.release()}


def ensure_tools() -> None:
    """The peers and the agent's own venv (reinstalled when pyproject.toml changed): a few seconds when present."""
    subprocess.run(["bash", str(REPO / "bench" / "install_tools.sh")], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small corpora and 1 run, for iteration (~5 min)")
    p.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 1)")
    p.add_argument("--cases", default="hash,media,big,tiny,scale,rows", help="comma-separated subset")
    p.add_argument("--tools", default=",".join(plan.ALL_TOOLS), help="comma-separated subset")
    p.add_argument("--modes", default="pinned,shared", help="pinned, shared or both (default both)")
    p.add_argument("--all-peers", action="store_true", help="every peer in every cell and mode (~80 min)")
    p.add_argument(
        "--rows", help="index sizes for the rerun-vs-rows case (default 10000,100000,1000000; quick 1000,10000)"
    )
    p.add_argument("--work", type=Path, help="work dir to keep and reuse corpora (default: a temp dir, removed)")
    p.add_argument("--out", type=Path, help="JSON output (default bench/results/<date>-<mode>.json)")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.tools = tuple(args.tools.split(","))
    args.modes = tuple(args.modes.split(","))
    rows = (
        tuple(int(n) for n in args.rows.split(",")) if args.rows else plan.QUICK_ROWS if args.quick else plan.FULL_ROWS
    )
    cases = args.cases.split(",")
    ensure_tools()
    work = (args.work or Path(tempfile.mkdtemp(prefix="azps-bench-"))).resolve()
    need_gb = 10 if args.quick else 40  # corpora + Azurite's copies (it frees dropped containers' extents late)
    existing = next(p for p in (work, *work.parents) if p.exists())
    free_gb = shutil.disk_usage(existing).free / 1e9
    if free_gb < need_gb:
        print(f"bench: {work} has {free_gb:.0f} GB free, the run needs about {need_gb} GB (a full disk makes "
              "Azurite answer 500 and peers retry for ever): free some space or pass --work")  # fmt: skip
        return 2
    work.mkdir(parents=True, exist_ok=True)
    specs = corpora.specs(args.quick)
    specs["rows"] = corpora.CorpusSpec("rows", plan.ROWS_SOURCE_FILES, 1024, 1024, per_dir=100, seed=21)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "method": "round two: pinned and shared modes, settled, rotated",
        "modes": list(args.modes),
        "runs": args.runs,
        "rows": list(rows),
        "machine": machine(),
        "versions": tools.versions(),
        "corpora": {k: vars(v) for k, v in specs.items()},
        "workers": tools.WORKERS,
        "git": git_describe(),
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
    }
    estimate = plan.estimate_seconds(args.quick, args.runs, all_peers=args.all_peers, cases=tuple(cases))
    print(f"bench: {meta['mode']}, {args.runs} run(s), modes {', '.join(args.modes)}; a whole run of this kind "
          f"takes about {estimate / 60:.0f} min here", flush=True)  # fmt: skip
    t_start = time.monotonic()
    bench = Bench(args, work)
    try:
        steps: dict[str, Callable[[], None]] = {}
        for name in ("media", "big", "tiny", "scale", "rows"):  # cheapest and most telling first; scale late
            if name not in cases:
                continue
            spec = specs[name]
            t0 = time.monotonic()
            src = corpora.generate(work / "corpora", spec)
            files, nbytes = corpora.corpus_bytes(src)
            meta["corpora"][name]["bytes"] = nbytes
            took = time.monotonic() - t0
            print(f"corpus {name}: {files} files, {nbytes / MB:.1f} MB (ready in {took:.1f}s)", flush=True)
            if name == "scale":
                steps[name] = lambda src=src, n=files, b=nbytes: bench.scale_case(src, n, b)
            elif name == "rows":
                steps[name] = lambda src=src: bench.rows_case(src, rows)
            else:
                steps[name] = lambda name=name, src=src, n=files, b=nbytes: bench.first_sync_case(name, src, n, b)
        if "hash" in cases:
            big = corpora.generate(work / "corpora", specs["big"])
            steps = {"hash": lambda: bench.hash_case(next(p for p in big.rglob("*") if p.is_file())), **steps}
        out = args.out or RESULTS / f"{meta['date'][:10]}-{meta['mode']}.json"
        for k, (name, step) in enumerate(steps.items(), 1):
            elapsed = time.monotonic() - t_start
            print(f"== [{k}/{len(steps)}] {name} (at {elapsed / 60:.1f} of ~{estimate / 60:.0f} min)", flush=True)
            bench.fresh_emulator(name)
            step()
            write_results(out, meta, bench.results, t_start, final=False)  # a checkpoint per case
    finally:
        bench.stop_emulator()
    table = write_results(out, meta, bench.results, t_start, final=True)
    print(table)
    print(f"wrote {out} ({meta['seconds']:.0f}s)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

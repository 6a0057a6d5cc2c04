"""Benchmark azphotosync against rclone, AzCopy and a plain SDK thread pool on one Azurite it starts.

    .venv/bin/python -m bench.run            # full: medians of 5 runs (75–110 min on 2 cores, ~70 GB free disk)
    .venv/bin/python -m bench.run --quick    # small corpora, 1 run: for iteration

Every tool writes to its own fresh container on the same Azurite, in the same run, in rotating order, so
ratios stay meaningful on a shared, noisy machine. Results: a table on stdout and JSON under bench/results/.
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

from . import corpora, tools
from .measure import Sample, ToolFailed, median, run

REPO = tools.REPO
RESULTS = REPO / "bench" / "results"
PEERS = ("rclone", "azcopy", "sdk")
ALL_TOOLS = ("azphotosync", *PEERS)
MB = 1_000_000


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, az: Azurite):
        self.args = args
        self.work = work
        self.az = az
        self.service = BlobServiceClient.from_connection_string(az.connection_string)
        self.tables = TableServiceClient.from_connection_string(az.connection_string)
        self.results: dict[str, Any] = {}
        self.tools = [t for t in ALL_TOOLS if t in args.tools]
        self.has_verify = "verify" in tools.agent_help("")
        self.scale_files = 0

    # -- plumbing ----------------------------------------------------------------------------------
    def target(self, case: str, tool: str, tag: str) -> tools.Target:
        name = f"{case}-{tool}-{tag}".lower()
        table = "".join(ch for ch in f"b{case}{tool}{tag}" if ch.isalnum())
        state = self.work / "state" / name
        shutil.rmtree(state, ignore_errors=True)
        t = tools.Target(self.az.blob_url, ACCOUNT, ACCOUNT_KEY, self.az.connection_string, name, table, state)
        self.service.create_container(name)
        return t

    def drop(self, t: tools.Target) -> None:
        """Delete a finished container and its index table (untimed), so Azurite's disk and memory stay
        small and no later command pays for them: Azurite rewrites its whole table store on every autosave
        after a Table write, so a kept 100k-row scale table would tax each of our later runs (the peers
        write no Table rows) with seconds of the emulator's only thread."""
        self.service.delete_container(t.container)
        self.tables.delete_table(t.table)  # no error when the tool made none

    def blob_count(self, t: tools.Target) -> int:
        return sum(1 for _ in self.service.get_container_client(t.container).list_blobs())

    def log(self, *parts: str) -> Path:
        return self.work / "logs" / ("-".join(parts) + ".log")

    def sync(self, tool: str, src: Path, t: tools.Target, *, rerun: bool, tag: str) -> Sample:
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
        return run(cmd, env=env, log=self.log(t.container, tag), settle_pid=self.az.pid)

    def record(self, case: str, tool: str, metric: str, s: Sample, nbytes: int = 0, rows: int = 0) -> None:
        by_metric = self.results.setdefault(case, {}).setdefault(tool, {})
        slot = by_metric.setdefault(metric, {"wall": [], "rss_mb": [], "cpu": []})
        slot["wall"].append(round(s.wall, 3))
        slot["cpu"].append(round(s.cpu, 2))
        slot["rss_mb"].append(round(s.rss_mb, 1))
        if nbytes:
            slot.setdefault("mb_s", []).append(round(nbytes / MB / s.wall, 1))
        if rows:
            slot.setdefault("rows_s", []).append(round(rows / s.wall))
        if tool == "azphotosync" and metric == "first_sync":
            summary = agent_summary(Path(s.log))
            if summary is not None:  # the Table mirror's share of the wall time (its cost)
                slot.setdefault("mirror_s", []).append(round(float(summary.get("mirror_seconds", 0.0)), 3))
        print(f"  {case:6} {metric:15} {tool:12} {s.wall:8.2f}s {s.cpu:7.2f}s CPU {s.rss_mb:7.1f} MB RSS", flush=True)

    def rotation(self, rep: int, names: list[str]) -> list[str]:
        k = rep % max(1, len(names))
        return names[k:] + names[:k]

    # -- cases -------------------------------------------------------------------------------------
    def first_sync_case(self, case: str, src: Path, files: int, nbytes: int) -> None:
        """Median first sync of a corpus per tool; each run into a fresh container and state dir.
        The media copies of the last run are kept for the deep verification."""
        kept: dict[str, tools.Target] = {}
        for rep in range(self.args.runs):
            for tool in self.rotation(rep, self.tools):
                t = self.target(case, tool, f"r{rep}")
                s = self.sync(tool, src, t, rerun=False, tag="first")
                got = self.blob_count(t)
                if got != files:
                    raise ToolFailed(f"{tool} stored {got} blobs of {files} for {case} (log {s.log})")
                self.record(case, tool, "first_sync", s, nbytes)
                if case == "media" and rep == self.args.runs - 1 and tool in ("azphotosync", "rclone"):
                    kept[tool] = t
                else:
                    self.drop(t)
        if kept:
            self.deep_verify_case(src, kept, nbytes)
            for t in kept.values():
                self.drop(t)

    def scale_case(self, src: Path, spec: corpora.CorpusSpec, files: int, nbytes: int) -> None:
        """Per tool, one after the other: first sync, then unchanged and one-edit reruns, then the quick
        verification, then the container is dropped. Azurite slows down as it holds more blobs (its
        metadata store scans), so tools must not queue behind each other's 100k blobs."""
        case = "scale"
        self.scale_files = files
        names = [t for t in self.tools if t != "sdk"]  # the plain uploader has no rerun to measure
        for k, tool in enumerate(names):
            t = self.target(case, tool, "x")
            s = self.sync(tool, src, t, rerun=False, tag="first")
            got = self.blob_count(t)
            if got != files:
                raise ToolFailed(f"{tool} stored {got} blobs of {files} for scale (log {s.log})")
            self.record(case, tool, "first_sync", s, nbytes)
            for rep in range(self.args.runs):
                s = self.sync(tool, src, t, rerun=True, tag=f"same{rep}")
                self.record(case, tool, "rerun_unchanged", s)
                rel = corpora.edit_one(src, spec, k * self.args.runs + rep)
                s = self.sync(tool, src, t, rerun=True, tag=f"edit{rep}")
                self.record(case, tool, "rerun_one_edit", s)
                print(f"  (edited {rel})", flush=True)
            self.verify_case(src, {tool: t})
            self.drop(t)

    def agent_verify(self, t: tools.Target, tag: str, *flags: str) -> Sample:
        cmd = [str(tools.AGENT), "verify", "--state-dir", str(t.state_dir), "--container", t.container,
               "--table", t.table, "--source-id", "bench", "--json", *flags]  # fmt: skip
        s = run(
            cmd, env=tools.agent_env(self.work, t), log=self.log(t.container, tag), ok=(0, 1), settle_pid=self.az.pid
        )
        if s.rc != 0:
            raise ToolFailed(f"verify found problems in a fresh copy (log {s.log})")
        return s

    def shared_verify_case(self, src: Path) -> None:
        """The issue's comparison: quick verification and ``rclone check`` **on the same container**. One
        container holds the agent's copy of the scale library (under its prefix, with its index table) and
        rclone's (under ``rclone/``), both written untimed; then the two verifications run in rotating
        order, so each lists a container of 200,000 blobs on an Azurite holding the same data. It runs last:
        Azurite deletes a dropped container's blobs in the background for minutes, which would slow
        whatever case came next."""
        if not {"azphotosync", "rclone"} <= set(self.tools) or not self.scale_files:
            return
        t = self.target("scale", "shared", "v")
        t = dataclasses.replace(t, rclone_dir="rclone")
        for tool in ("azphotosync", "rclone"):
            s = self.sync(tool, src, t, rerun=False, tag=f"load-{tool}")
            print(f"  (shared container: {tool} copy loaded in {s.wall:.0f}s, untimed)", flush=True)
        expect = 2 * self.scale_files
        if self.blob_count(t) != expect:
            raise ToolFailed(f"the shared container holds {self.blob_count(t)} blobs, expected {expect}")
        self.verify_case(src, {"azphotosync": t, "rclone": t}, metric="verify_shared")
        self.drop(t)

    def verify_case(self, src: Path, targets: dict[str, tools.Target], metric: str = "verify_quick") -> None:
        """Quick verification of the scale library (Table rows against the blob listing, no downloads)
        against ``rclone check`` (local files against the listing, MD5 from the listing) on rclone's copy.
        Medians of ``--runs``, tools in rotating order (``--verify-runs`` caps the count)."""
        for rep in range(min(self.args.runs, self.args.verify_runs)):
            for tool in self.rotation(rep, [t for t in ("azphotosync", "rclone") if t in targets]):
                t = targets[tool]
                if tool == "azphotosync" and self.has_verify:
                    s = self.agent_verify(t, f"{metric}{rep}")
                elif tool == "rclone":
                    env = tools.rclone_env(self.work, t)
                    s = run(
                        tools.rclone_check(src, t),
                        env=env,
                        log=self.log(t.container, f"{metric}-check{rep}"),
                        settle_pid=self.az.pid,
                    )
                else:
                    continue
                self.record("scale", tool, metric, s, rows=self.scale_files)

    def deep_verify_case(self, src: Path, targets: dict[str, tools.Target], nbytes: int) -> None:
        """Deep verification of the media library: every blob downloaded and re-hashed (``--deep-budget``
        above the library size) against ``rclone check --download`` (downloads and compares bytes)."""
        budget = f"{nbytes * 2 // MB}MB"
        for rep in range(self.args.runs):
            for tool in self.rotation(rep, [t for t in ("azphotosync", "rclone") if t in targets]):
                t = targets[tool]
                if tool == "azphotosync" and self.has_verify:
                    s = self.agent_verify(t, f"deep{rep}", "--deep-budget", budget)
                elif tool == "rclone":
                    cmd = [*tools.rclone_check(src, t), "--download"]
                    s = run(
                        cmd,
                        env=tools.rclone_env(self.work, t),
                        log=self.log(t.container, f"deep{rep}"),
                        settle_pid=self.az.pid,
                    )
                else:
                    continue
                self.record("media", tool, "verify_deep", s, nbytes)

    def hash_case(self, path: Path) -> None:
        """SHA-256 throughput of the agent's hasher against raw hashlib, on a warm page cache."""
        from sync_core.hasher import hash_file

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
        self.results["hash"] = {k: {"throughput": {"mb_s": [round(v, 1) for v in vals]}} for k, vals in out.items()}
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


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per case/tool/metric and ratios azphotosync / peer (wall time: < 1 means we are faster)."""
    med: dict[str, Any] = {}
    for case, by_tool in results.items():
        for tool, metrics in by_tool.items():
            for metric, vals in metrics.items():
                med.setdefault(case, {}).setdefault(tool, {})[metric] = {k: median(v) for k, v in vals.items()}
    ratios: dict[str, Any] = {}
    for case, by_tool in med.items():
        ours = by_tool.get("azphotosync", {})
        for peer in PEERS:
            for metric, m in by_tool.get(peer, {}).items():
                if metric in ours and m.get("wall") and ours[metric].get("wall"):
                    key = f"{case}.{metric}"
                    ratios.setdefault(key, {})[peer] = round(ours[metric]["wall"] / m["wall"], 3)
    return {"medians": med, "ratios": ratios}


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    med, ratios = summary["medians"], summary["ratios"]
    out: list[dict[str, Any]] = []

    def ratio_target(name: str, key: str, peer: str, limit: float, below: bool = True) -> None:
        r = ratios.get(key, {}).get(peer)
        ok = None if r is None else (r <= limit if below else r < limit)
        out.append({"target": name, "measured": r, "limit": limit, "met": ok})

    ratio_target("media first sync <= 0.8x rclone", "media.first_sync", "rclone", 0.8)
    ratio_target("tiny first sync (Table mirror incl.) <= 1.0x rclone", "tiny.first_sync", "rclone", 1.0)
    ours = med.get("scale", {}).get("azphotosync", {}).get("rerun_unchanged", {}).get("wall")
    for peer in ("rclone", "azcopy"):  # from the medians: inverting the rounded ratio would shift it by ~1%
        theirs = med.get("scale", {}).get(peer, {}).get("rerun_unchanged", {}).get("wall")
        speedup = None if not ours or theirs is None else round(theirs / ours, 1)
        out.append({"target": f"unchanged rerun of scale >= 10x faster than {peer}", "measured": speedup,
                    "limit": 10, "met": None if speedup is None else speedup >= 10})  # fmt: skip
    for case, what in (("scale", "first_sync"), ("scale", "rerun_unchanged"), ("big", "first_sync")):
        rss = med.get(case, {}).get("azphotosync", {}).get(what, {}).get("rss_mb")
        out.append({"target": f"peak RSS {case} {what} <= 150 MB", "measured": rss, "limit": 150,
                    "met": None if rss is None else rss <= 150})  # fmt: skip
    for key, where in (("verify_shared", "on the same container"), ("verify_quick", "each on its own container")):
        r = ratios.get(f"scale.{key}", {}).get("rclone")
        out.append({"target": f"quick verify of scale faster than rclone check ({where})", "measured": r,
                    "limit": 1.0, "met": None if r is None else r < 1.0})  # fmt: skip
    return out


def render_table(meta: dict[str, Any], summary: dict[str, Any], tgt: list[dict[str, Any]]) -> str:
    lines = [f"# {meta['date']}  {meta['machine']['cpu']}  nproc={meta['machine']['nproc']}  mode={meta['mode']}"]
    head = f"{'case':7} {'metric':16} {'tool':12} {'wall s':>9} {'CPU s':>8} {'MB/s|rows':>8} {'RSS MB':>8}  ours/peer"
    lines.append(head)
    for case, by_tool in summary["medians"].items():
        if case == "hash":
            continue
        for tool in ALL_TOOLS:
            for metric, m in by_tool.get(tool, {}).items():
                r = summary["ratios"].get(f"{case}.{metric}", {}).get(tool)
                mbs = (
                    f"{m['mb_s']:8.1f}" if m.get("mb_s") else f"{m['rows_s']:6.0f}/s" if m.get("rows_s") else f"{'':8}"
                )
                lines.append(
                    f"{case:7} {metric:16} {tool:12} {m['wall']:9.2f} {m['cpu']:8.2f} {mbs} {m['rss_mb']:8.1f}  "
                    + (f"{r:.2f}x" if r is not None else "")
                    + (f"  (Table mirror {m['mirror_s']:.2f} s)" if m.get("mirror_s") is not None else "")
                )
    for k, v in summary["medians"].get("hash", {}).items():
        lines.append(f"hash    {'sha256 MB/s':16} {k:22} {v['throughput']['mb_s']:8.1f}")
    lines.append("targets:")
    for t in tgt:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        lines.append(f"  [{mark}] {t['target']}: measured {t['measured']}")
    return "\n".join(lines)


def write_results(out: Path, meta: dict[str, Any], results: dict[str, Any], t_start: float, *, final: bool) -> str:
    meta["seconds"] = round(time.monotonic() - t_start, 1)
    meta["complete"] = final
    summary = summarize(results)
    tgt = targets(summary)
    table = render_table(meta, summary, tgt)
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
    if not (tools.RCLONE.exists() and tools.AZCOPY.exists()):
        subprocess.run(["bash", str(REPO / "bench" / "install_tools.sh")], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small corpora and 1 run, for iteration")
    p.add_argument("--runs", type=int, help="runs per measurement (default 5, quick 1)")
    p.add_argument("--verify-runs", type=int, default=5, help="cap on quick verification runs (default 5)")
    p.add_argument("--cases", default="hash,media,tiny,scale,big", help="comma-separated subset")
    p.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma-separated subset")
    p.add_argument("--work", type=Path, help="work dir to keep and reuse corpora (default: a temp dir, removed)")
    p.add_argument("--out", type=Path, help="JSON output (default bench/results/<date>-<mode>.json)")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 5)
    args.tools = tuple(args.tools.split(","))
    cases = args.cases.split(",")
    ensure_tools()
    work = (args.work or Path(tempfile.mkdtemp(prefix="azps-bench-"))).resolve()
    need_gb = 10 if args.quick else 70  # corpora + Azurite's copies (it frees dropped containers' extents late)
    existing = next(p for p in (work, *work.parents) if p.exists())
    free_gb = shutil.disk_usage(existing).free / 1e9
    if free_gb < need_gb:
        print(f"bench: {work} has {free_gb:.0f} GB free, the run needs about {need_gb} GB (a full disk makes "
              "Azurite answer 500 and peers retry for ever): free some space or pass --work")  # fmt: skip
        return 2
    work.mkdir(parents=True, exist_ok=True)
    specs = corpora.specs(args.quick)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "runs": args.runs,
        "machine": machine(),
        "versions": tools.versions(),
        "corpora": {k: vars(v) for k, v in specs.items()},
        "workers": tools.WORKERS,
        "git": git_describe(),
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
    }
    azurite_dir = work / "azurite"
    shutil.rmtree(azurite_dir, ignore_errors=True)
    t_start = time.monotonic()
    az = start_azurite(azurite_dir)
    try:
        bench = Bench(args, work, az)
        steps: dict[str, Callable[[], None]] = {}
        scale_src: Path | None = None
        for name in ("media", "big", "scale", "tiny"):  # cheapest and most telling first
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
                steps[name] = lambda src=src, spec=spec, n=files, b=nbytes: bench.scale_case(src, spec, n, b)
                scale_src = src
            else:
                steps[name] = lambda name=name, src=src, n=files, b=nbytes: bench.first_sync_case(name, src, n, b)
        if scale_src is not None:  # last: see shared_verify_case
            steps["scale-shared"] = lambda src=scale_src: bench.shared_verify_case(src)
        if "hash" in cases:
            big = corpora.generate(work / "corpora", specs["big"])
            steps = {"hash": lambda: bench.hash_case(next(p for p in big.rglob("*") if p.is_file())), **steps}
        out = args.out or RESULTS / f"{meta['date'][:10]}-{meta['mode']}.json"
        for name, step in steps.items():
            print(f"== {name}", flush=True)
            step()
            write_results(out, meta, bench.results, t_start, final=False)  # a checkpoint per case
    finally:
        az.stop()
    table = write_results(out, meta, bench.results, t_start, final=True)
    print(table)
    print(f"wrote {out} ({meta['seconds']:.0f}s)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

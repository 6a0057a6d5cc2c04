"""Downloads: restore and deep verification through the streamed Get Blob (``sync_core/storage/download.py``)
against the same commands through the SDK's ``download_blob``, with rclone beside them (docs/benchmarks.md,
"Downloads").

    .venv/bin/python -m bench.downloads [--runs 3] [--rclone PATH] [--piece BYTES]

One Azurite it starts, pinned as ``bench.run``'s pinned mode (the emulator on one core, the command under
test on the other; every command starts settled). The quick corpora ``big`` (one 320 MiB file) and
``media`` (40 files, 0.5–6 MiB) are backed up once by the agent, rclone's copy is added beside them (untimed),
and then, in rotating order, each of:

* ``azphotosync`` — ``azphotosync restore`` / ``verify --deep-budget`` as they are;
* ``sdk-path`` — the same commands with ``sdk_internals.BLOB_GET_ERRORS`` switched off, so downloads take
  ``download_blob(max_concurrency=1).chunks()``, and the transport's read size as it was: the code path
  restore and deep verification took before;
* ``rclone`` — ``rclone copy`` of its copy / ``rclone check --download`` (as ``bench.run``).

Every sample is a fresh process (its start-up included) running this checkout's code (``PYTHONPATH``) in the
agent venv of ``bench/install_tools.sh`` when there is one (``--python``: a dev venv imports aiohttp, ~0.15 s
of start-up an installed agent does not pay). Wall,
CPU and peak RSS per sample, medians at the end. ``--piece`` overrides ``clients.DOWNLOAD_PIECE`` (the
transport's read size) in ``azphotosync``'s processes, to compare read sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from agent.emulator import ACCOUNT, ACCOUNT_KEY, Azurite, start_azurite

from . import corpora, tools
from .measure import Sample, ToolFailed, make_modes, run, schedule, wrote_now

MB = 1_000_000
TOOLS = ("azphotosync", "sdk-path", "rclone")
BEFORE_PIECE = 256 * 1024  # the transport's read size before the streamed Get Blob: sdk-path runs as it ran


def agent_cmd(python: str, direct: bool, piece: int | None, *args: str) -> list[str]:
    """The agent's CLI from this checkout, with the direct Get Blob on or off (and the read size, if given)."""
    prelude = (
        "import sys\n"
        "from sync_core.storage import clients, sdk_internals\n"
        f"sdk_internals.BLOB_GET_ERRORS = {direct}\n"
        + (f"clients.DOWNLOAD_PIECE = {piece}\n" if piece else "")
        + "from agent.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return [python, "-c", prelude, *args]


class Downloads:
    def __init__(self, args: argparse.Namespace, work: Path, az: Azurite):
        self.args, self.work, self.az = args, work, az
        self.mode = make_modes(["pinned"], os.sched_getaffinity(0))[0]
        self.results: dict[str, dict[str, list[Sample]]] = {}

    def agent(self, tool: str, *args: str) -> list[str]:
        piece = self.args.piece if tool == "azphotosync" else BEFORE_PIECE
        return agent_cmd(self.args.python, tool == "azphotosync", piece, *args)

    def agent_env(self, t: tools.Target) -> dict[str, str]:
        return {**tools.agent_env(self.work, t), "PYTHONPATH": str(tools.REPO)}

    def target(self, case: str) -> tools.Target:
        name = f"dl-{case}"
        BlobServiceClient.from_connection_string(self.az.connection_string).create_container(name)
        wrote_now()
        state = self.work / "state" / name
        shutil.rmtree(state, ignore_errors=True)
        table = f"dl{case}"
        return tools.Target(self.az.blob_url, ACCOUNT, ACCOUNT_KEY, self.az.connection_string, name, table, state)

    def timed(self, cmd: list[str], env: dict[str, str], tag: str, *, writes: bool) -> Sample:
        log = self.work / "logs" / f"{tag}.log"
        return run(cmd, env=env, log=log, settle_pid=self.az.pid, mode=self.mode, writes=writes)

    def load(self, case: str, src: Path) -> tools.Target:
        """Our backup and rclone's copy beside it, untimed (unpinned)."""
        t = self.target(case)
        env = self.agent_env(t)
        cmd = self.agent("azphotosync", *tools.agent_sync(src, t)[1:])
        run(cmd, env=env, log=self.work / "logs" / f"load-{case}.log")
        t_rclone = dataclasses.replace(t, rclone_dir="rclone")
        run([self.args.rclone, *tools.rclone_copy(src, t_rclone)[1:]], env=tools.rclone_env(self.work, t_rclone),
            log=self.work / "logs" / f"load-rclone-{case}.log")  # fmt: skip
        wrote_now()
        return t_rclone

    def restore(self, case: str, t: tools.Target, files: int, nbytes: int) -> None:
        for rep, _, tool in schedule(self.args.runs, {"pinned": TOOLS}):
            dest = self.work / "restore" / f"{case}-{tool}"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if tool == "rclone":
                cmd, env = [self.args.rclone, *tools.rclone_restore(dest, t)[1:]], tools.rclone_env(self.work, t)
            else:
                cmd = self.agent(tool, *tools.agent_restore(dest, t)[1:])
                env = self.agent_env(t)
            s = self.timed(cmd, env, f"restore-{case}-{tool}{rep}", writes=False)
            if corpora.corpus_bytes(dest) != (files, nbytes):
                raise ToolFailed(f"{tool} restored {corpora.corpus_bytes(dest)} of {(files, nbytes)} (log {s.log})")
            self.record(f"{case} restore", tool, s)
            shutil.rmtree(dest)

    def deep_verify(self, src: Path, t: tools.Target, nbytes: int) -> None:
        budget = f"{nbytes * 2 // MB}MB"
        for rep, _, tool in schedule(self.args.runs, {"pinned": TOOLS}):
            if tool == "rclone":
                cmd = [self.args.rclone, *tools.rclone_check(src, t)[1:], "--download"]
                s = self.timed(cmd, tools.rclone_env(self.work, t), f"deep-rclone{rep}", writes=False)
            else:
                args = ["verify", "--state-dir", str(t.state_dir), "--container", t.container, "--table", t.table,
                        "--source-id", "bench", "--json", "--deep-budget", budget]  # fmt: skip
                cmd = self.agent(tool, *args)
                env = self.agent_env(t)
                s = self.timed(cmd, env, f"deep-{tool}{rep}", writes=True)
            self.record("media deep verify", tool, s)

    def record(self, cell: str, tool: str, s: Sample) -> None:
        self.results.setdefault(cell, {}).setdefault(tool, []).append(s)
        print(f"  {cell:18} {tool:12} {s.wall:7.2f}s {s.cpu:6.2f}s CPU {s.rss_mb:6.0f} MB RSS", flush=True)

    def table(self) -> str:
        lines = ["| case | tool | wall s (median) | CPU s | peak RSS MB | walls |", "|---|---|---:|---:|---:|---|"]
        for cell, by_tool in self.results.items():
            for tool, samples in by_tool.items():
                walls = [s.wall for s in samples]
                lines.append(
                    f"| {cell} | {tool} | {statistics.median(walls):.2f} | "
                    f"{statistics.median(s.cpu for s in samples):.2f} | "
                    f"{statistics.median(s.rss_mb for s in samples):.0f} | {' '.join(f'{w:.2f}' for w in walls)} |"
                )
        return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--rclone", default=str(tools.RCLONE), help="the rclone binary (bench/install_tools.sh's)")
    agent_py = tools.AGENT_VENV_AGENT.with_name("python")
    ap.add_argument(
        "--python",
        default=str(agent_py if agent_py.exists() else sys.executable),
        help="the interpreter of the agent's processes (default: bench/install_tools.sh's agent venv)",
    )
    ap.add_argument("--piece", type=int, help="clients.DOWNLOAD_PIECE for the agent's processes")
    ap.add_argument("--cases", default="big,media")
    args = ap.parse_args()
    if not Path(args.rclone).exists():
        print(f"bench.downloads: no rclone at {args.rclone}: run bench/install_tools.sh or pass --rclone")
        return 2
    work = (args.work or Path(tempfile.mkdtemp(prefix="azps-dl-"))).resolve()
    specs = corpora.specs(quick=True)
    shutil.rmtree(work / "azurite", ignore_errors=True)  # a kept --work dir: the corpora are reused, not the data
    az = start_azurite(work / "azurite")
    try:
        bench = Downloads(args, work, az)
        for case in args.cases.split(","):
            src = corpora.generate(work / "corpora", specs[case])
            files, nbytes = corpora.corpus_bytes(src)
            print(f"corpus {case}: {files} files, {nbytes / MB:.1f} MB", flush=True)
            t = bench.load(case, src)
            if case == "media":
                bench.deep_verify(src, t, nbytes)
            bench.restore(case, t, files, nbytes)
    finally:
        az.stop()
    print(bench.table())
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

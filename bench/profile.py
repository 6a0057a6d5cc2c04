"""Profile the agent on one benchmark corpus with py-spy (sampling, all threads, idle included).

    .venv/bin/python -m bench.profile tiny            # first sync, an unchanged rerun, a restore
    .venv/bin/python -m bench.profile big --quick --phases first,restore

Writes collapsed stacks and a summary (top frames by wall-clock share, per phase) to
bench/results/profiles/, which docs/benchmarks.md quotes where a target is missed.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.emulator import ACCOUNT, ACCOUNT_KEY, start_azurite

from . import corpora, tools
from .run import ensure_tools

PYSPY = tools.TOOLS_DIR / "venv" / "bin" / "py-spy"
OUT = tools.REPO / "bench" / "results" / "profiles"


def summarize(raw: Path, top: int = 25) -> str:
    """Wall-clock share of the hottest frames (self and inclusive), from py-spy's collapsed stacks."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"samples: {total} (all threads; idle waits included)", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", choices=("media", "tiny", "scale", "big"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--work", type=Path, default=tools.REPO / "bench" / ".work" / "profile")
    p.add_argument("--idle", action="store_true", help="include idle (waiting) samples")
    p.add_argument("--gil", action="store_true", help="only samples holding the GIL (where Python CPU goes)")
    p.add_argument("--phases", default="first,rerun,restore", help="comma-separated: first, rerun, restore")
    args = p.parse_args()
    ensure_tools()
    spec = corpora.specs(args.quick)[args.corpus]
    src = corpora.generate(args.work / "corpora", spec)
    shutil.rmtree(args.work / "azurite", ignore_errors=True)
    az = start_azurite(args.work / "azurite")
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        state = Path(tempfile.mkdtemp(prefix="state-", dir=args.work))
        name = f"prof-{args.corpus}"
        t = tools.Target(az.blob_url, ACCOUNT, ACCOUNT_KEY, az.connection_string, name, "prof" + args.corpus, state)
        env = tools.agent_env(args.work, t)
        phases = args.phases.split(",")
        if "first" not in phases:  # the other phases need the corpus synced
            subprocess.run(tools.agent_sync(src, t), env=env, check=True, stdout=subprocess.DEVNULL)
        for phase in phases:
            raw = OUT / f"{args.corpus}-{phase}.collapsed"
            cmd = [
                str(PYSPY),
                "record",
                "--format",
                "raw",
                "-o",
                str(raw),
                "--rate",
                "200",
                "--threads",
                "--nonblocking",
            ]
            if args.idle:
                cmd.append("--idle")
            if args.gil:
                cmd.append("--gil")
            dest = Path(tempfile.mkdtemp(prefix="restore-", dir=args.work)) / "out"
            run = tools.agent_restore(dest, t) if phase == "restore" else tools.agent_sync(src, t)
            cmd += ["--", *run]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            text = summarize(raw)
            (OUT / f"{args.corpus}-{phase}.txt").write_text(text + "\n")
            print(f"== {args.corpus} {phase}\n{text}\n")
    finally:
        az.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

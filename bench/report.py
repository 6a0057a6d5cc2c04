"""Render a results JSON as the Markdown tables of docs/benchmarks.md.

.venv/bin/python -m bench.report bench/results/<date>-full.json > /tmp/tables.md

Results of the round-two method (``meta.modes``: pinned and shared) go through ``bench.targets``; older
results (one mode, the first round's targets) keep the layout they were published with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TOOLS = ("azphotosync", "rclone", "azcopy", "sdk")
METRIC_NAMES = {
    "first_sync": "first sync",
    "rerun_unchanged": "unchanged rerun",
    "rerun_one_edit": "one-edit rerun",
    "verify_quick": "quick verify / `rclone check`, own containers",
    "verify_shared": "quick verify / `rclone check`, same container",
    "verify_deep": "deep verify",
}


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _rate(cell: dict[str, Any]) -> str:
    if cell.get("mb_s"):
        return f"{cell['mb_s']:.1f} MB/s"
    if cell.get("rows_s"):
        return f"{cell['rows_s']:.0f} rows/s"
    return "–"


def render(doc: dict[str, Any]) -> str:
    meta, med, ratios = doc["meta"], doc["medians"], doc["ratios"]
    m = meta["machine"]
    out = [
        f"Run {meta['date']} ({meta['mode']}, median of {meta['runs']} run(s) per cell, {meta['seconds'] / 60:.0f} min "
        f"in all) on {m['nproc']} × {m['cpu']}, {m['mem_mb'] / 1024:.0f} GiB RAM, Linux {m['kernel']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "| case | measure | tool | wall s | CPU s | MB/s or rows/s | peak RSS MB | azphotosync ÷ tool (wall) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for case, by_tool in med.items():
        if case == "hash":
            continue
        metrics: list[str] = []
        for tool in TOOLS:
            for metric in by_tool.get(tool, {}):
                if metric not in metrics:
                    metrics.append(metric)
        for metric in metrics:
            for tool in TOOLS:
                cell = by_tool.get(tool, {}).get(metric)
                if not cell:
                    continue
                r = ratios.get(f"{case}.{metric}", {}).get(tool)
                out.append(
                    f"| {case} | {METRIC_NAMES.get(metric, metric)} | {tool} | {_fmt(cell.get('wall'), '.2f')} | "
                    f"{_fmt(cell.get('cpu'), '.2f')} | "
                    f"{_rate(cell)} | {_fmt(cell.get('rss_mb'), '.0f')} | "
                    f"{'' if r is None else format(r, '.2f') + '×'} |"
                )
    mirror = [
        (case, by_tool["azphotosync"]["first_sync"])
        for case, by_tool in med.items()
        if by_tool.get("azphotosync", {}).get("first_sync", {}).get("mirror_s") is not None
    ]
    if mirror:
        out += ["", "| Table mirror (azphotosync first sync) | mirror s | share of the wall time |", "|---|---:|---:|"]
        for case, cell in mirror:
            out.append(f"| {case} | {cell['mirror_s']:.2f} | {100 * cell['mirror_s'] / cell['wall']:.0f}% |")
    if "hash" in med:
        out += ["", "| SHA-256 throughput (warm page cache) | MB/s |", "|---|---:|"]
        for k, v in med["hash"].items():
            out.append(f"| {k} | {v['throughput']['mb_s']:.0f} |")
    out += ["", "| target | measured | met |", "|---|---:|---|"]
    for t in doc["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        out.append(f"| {t['target']} | {'–' if t['measured'] is None else t['measured']} | {met} |")
    return "\n".join(out) + "\n"


def render_round_two(doc: dict[str, Any]) -> str:
    from .targets import render_markdown

    meta, m = doc["meta"], doc["meta"]["machine"]
    head = (
        f"Run {meta['date']} ({meta['mode']}, median of {meta['runs']} run(s) per cell, modes "
        f"{' and '.join(meta['modes'])}, {meta['seconds'] / 60:.0f} min in all, commit {meta['git']}) on "
        f"{m['nproc']} × {m['cpu']}, {m['mem_mb'] / 1024:.0f} GiB RAM, Linux {m['kernel']}.\n\n"
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".\n\n"
    )
    return head + render_markdown({"medians": doc["medians"], "ratios": doc["ratios"]}, doc["targets"])


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    sys.stdout.write(render_round_two(doc) if "modes" in doc["meta"] else render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

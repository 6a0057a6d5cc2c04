"""Medians, ratios and the round-two targets of a benchmark run, and the tables that show them.

Results are nested ``mode → case → tool → measure → {wall, cpu, user, system, rss_mb, ...: [samples]}``;
the functions here are pure (no Azurite, no processes), so the met/missed logic is unit-tested.
"""

from __future__ import annotations

import statistics
from typing import Any

from .plan import ALL_TOOLS, PEERS

PINNED_WALL = (  # (case, measure): pinned-mode wall time ≤ 1.0× the best peer
    ("media", "first_sync"),
    ("big", "first_sync"),
    ("media", "restore"),
    ("tiny", "restore"),
    ("big", "restore"),
    ("scale", "verify_shared"),
    ("media", "verify_deep"),
)
RSS_LIMIT_MB = 150.0
RERUN_SPEEDUP = 20.0
FLAT_LIMIT = 1.25  # rerun at the most rows ÷ at the fewest: "flat" allows a quarter for noise
MEASURE_NAMES = {
    "first_sync": "first sync",
    "rerun_unchanged": "unchanged rerun",
    "verify_shared": "quick verify / `rclone check` of its own copy",
    "verify_deep": "deep verify / `rclone check --download`",
    "restore": "restore (ours: SHA-256 checked; peers: MD5 where the blob has one)",
}


def measure_name(measure: str) -> str:
    if measure.startswith("rerun_rows_"):
        return f"rerun, {int(measure.rsplit('_', 1)[1]):,} index rows"
    return MEASURE_NAMES.get(measure, measure)


def _median(v: list[float]) -> float | None:
    return statistics.median(v) if v else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per mode/case/tool/measure, and ratios ours ÷ peer of the wall time (< 1: we are faster)."""
    med: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for mode, by_case in results.items():
        for case, by_tool in by_case.items():
            for tool, measures in by_tool.items():
                for measure, vals in measures.items():
                    cell = {k: _median(v) for k, v in vals.items()}
                    med.setdefault(mode, {}).setdefault(case, {}).setdefault(tool, {})[measure] = cell
        for case, by_tool in med.get(mode, {}).items():
            ours = by_tool.get("azphotosync", {})
            for peer in PEERS:
                for measure, m in by_tool.get(peer, {}).items():
                    if m.get("wall") and ours.get(measure, {}).get("wall"):
                        key = f"{case}.{measure}"
                        ratios.setdefault(mode, {}).setdefault(key, {})[peer] = round(
                            ours[measure]["wall"] / m["wall"], 3
                        )
    return {"medians": med, "ratios": ratios}


def _get(med: dict[str, Any], mode: str, case: str, tool: str, measure: str, key: str = "wall") -> float | None:
    v = med.get(mode, {}).get(case, {}).get(tool, {}).get(measure, {}).get(key)
    return None if v is None else float(v)


def _row(
    name: str, mode: str, measured: float | None, limit: float, met: bool | None, detail: str = ""
) -> dict[str, Any]:
    return {"target": name, "mode": mode, "measured": measured, "limit": limit, "met": met, "detail": detail}


def best_peer(med: dict[str, Any], mode: str, case: str, measure: str) -> tuple[str, float] | None:
    """The fastest peer's (name, median wall) for a cell, or None when no peer was measured."""
    peers = [(p, w) for p in PEERS if (w := _get(med, mode, case, p, measure))]
    return min(peers, key=lambda pw: pw[1]) if peers else None


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and met (True), missed (False) or not measured (None)."""
    med = summary["medians"]
    out: list[dict[str, Any]] = []
    for case, measure in PINNED_WALL:
        ours, best = _get(med, "pinned", case, "azphotosync", measure), best_peer(med, "pinned", case, measure)
        name = f"{case} {measure_name(measure).split(' (')[0]} wall <= 1.0x best peer"
        if ours is None or best is None:
            out.append(_row(name, "pinned", None, 1.0, None))
            continue
        r = round(ours / best[1], 3)
        detail = f"{ours:.2f} s vs {best[0]} {best[1]:.2f} s"
        disk = {t: _get(med, "pinned", case, t, measure, "to_disk_s") for t in ALL_TOOLS}
        if measure == "restore" and disk["azphotosync"] is not None:
            best_disk = min((w, t) for t, w in disk.items() if w is not None and t != "azphotosync")
            detail += f"; to disk (command + sync): {disk['azphotosync']:.2f} s vs {best_disk[1]} {best_disk[0]:.2f} s"
        out.append(_row(name, "pinned", r, 1.0, r <= 1.0, detail))
    ours, rc = (
        _get(med, "pinned", "media", "azphotosync", "first_sync"),
        _get(med, "pinned", "media", "rclone", "first_sync"),
    )
    r = None if ours is None or rc is None else round(ours / rc, 3)
    out.append(_row("media first sync wall <= 0.8x rclone", "pinned", r, 0.8, None if r is None else r <= 0.8))
    for case in ("tiny", "scale"):
        mode = "shared" if _get(med, "shared", case, "azphotosync", "first_sync", "cpu") is not None else "pinned"
        ours, rc = (_get(med, mode, case, t, "first_sync", "cpu") for t in ("azphotosync", "rclone"))
        r = None if ours is None or rc is None else round(ours / rc, 3)
        detail = "" if r is None else f"{ours:.1f} s vs rclone {rc:.1f} s of CPU"
        out.append(_row(f"{case} first sync CPU s <= rclone's", mode, r, 1.0, None if r is None else r <= 1.0, detail))
        ours, rc = (_get(med, "shared", case, t, "first_sync") for t in ("azphotosync", "rclone"))
        mirror = _get(med, "shared", case, "azphotosync", "first_sync", "mirror_s")
        r = None if ours is None or rc is None else round(ours / rc, 3)
        detail = "" if ours is None or mirror is None else f"Table mirror {mirror:.2f} s ({100 * mirror / ours:.0f}%)"
        out.append(
            _row(f"{case} first sync wall <= 1.0x rclone", "shared", r, 1.0, None if r is None else r <= 1.0, detail)
        )
    ours, best = (
        _get(med, "pinned", "scale", "azphotosync", "rerun_unchanged"),
        best_peer(med, "pinned", "scale", "rerun_unchanged"),
    )
    speedup = None if not ours or best is None else round(best[1] / ours, 1)
    detail = "" if speedup is None or best is None else f"{ours:.2f} s vs {best[0]} {best[1]:.2f} s"
    out.append(_row(f"unchanged rerun of scale >= {RERUN_SPEEDUP:.0f}x faster than the best peer", "pinned", speedup,
                    RERUN_SPEEDUP, None if speedup is None else speedup >= RERUN_SPEEDUP, detail))  # fmt: skip
    out.append(rows_target(med))
    out.append(rss_target(med))
    return out


def rows_target(med: dict[str, Any]) -> dict[str, Any]:
    """The clean rerun stays flat as the index grows: at the most rows ≤ FLAT_LIMIT × at the fewest."""
    name = f"rerun flat as the index grows (most rows <= {FLAT_LIMIT}x fewest)"
    rows = med.get("pinned", {}).get("rows", {}).get("azphotosync", {})
    walls = sorted((int(k.rsplit("_", 1)[1]), v["wall"]) for k, v in rows.items() if k.startswith("rerun_rows_"))
    if len(walls) < 2:
        return _row(name, "pinned", None, FLAT_LIMIT, None)
    r = round(walls[-1][1] / walls[0][1], 3)
    detail = ", ".join(f"{n:,} rows {w:.2f} s" for n, w in walls)
    return _row(name, "pinned", r, FLAT_LIMIT, r <= FLAT_LIMIT, detail)


def rss_target(med: dict[str, Any]) -> dict[str, Any]:
    """Our peak RSS ≤ 150 MB in every case and mode; measured is the largest, detail says where."""
    cells = [
        (m["rss_mb"], f"{mode} {case} {measure}")
        for mode, by_case in med.items()
        for case, by_tool in by_case.items()
        for measure, m in by_tool.get("azphotosync", {}).items()
        if m.get("rss_mb") is not None
    ]
    if not cells:
        return _row(f"peak RSS <= {RSS_LIMIT_MB:.0f} MB in every case", "all", None, RSS_LIMIT_MB, None)
    rss, where = max(cells)
    return _row(
        f"peak RSS <= {RSS_LIMIT_MB:.0f} MB in every case", "all", rss, RSS_LIMIT_MB, rss <= RSS_LIMIT_MB, where
    )


MARK = {True: "met", False: "MISSED", None: "not measured"}


def render_text(title: str, summary: dict[str, Any], tgt: list[dict[str, Any]]) -> str:
    """The final plain-text table: every cell in both modes, CPU seconds, then the targets."""
    lines = [
        title,
        f"{'mode':7} {'case':6} {'measure':44} {'tool':12} {'wall s':>8} {'CPU s':>8} {'RSS MB':>7}  ours/peer",
    ]
    for mode, by_case in summary["medians"].items():
        for case, by_tool in by_case.items():
            if case == "hash":
                continue
            measures = list(dict.fromkeys(m for t in ALL_TOOLS for m in by_tool.get(t, {})))
            for measure in measures:
                for tool in ALL_TOOLS:
                    m = by_tool.get(tool, {}).get(measure)
                    if not m:
                        continue
                    r = summary["ratios"].get(mode, {}).get(f"{case}.{measure}", {}).get(tool)
                    lines.append(
                        f"{mode:7} {case:6} {measure_name(measure)[:44]:44} {tool:12} {m['wall']:8.2f} {m['cpu']:8.2f} "
                        f"{m['rss_mb']:7.0f}  " + ("" if r is None else f"{r:.2f}x")
                    )
    lines.append("targets:")
    for t in tgt:
        lines.append(f"  [{MARK[t['met']]:>12}] {t['target']} ({t['mode']}): {t['measured']}  {t['detail']}".rstrip())
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any], tgt: list[dict[str, Any]]) -> str:
    """The same as Markdown, for docs/benchmarks.md."""
    out = [
        "| mode | case | measure | tool | wall s | CPU s (user + sys) | peak RSS MB | azphotosync ÷ tool (wall) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for mode, by_case in summary["medians"].items():
        for case, by_tool in by_case.items():
            if case == "hash":
                continue
            for measure in dict.fromkeys(m for t in ALL_TOOLS for m in by_tool.get(t, {})):
                for tool in ALL_TOOLS:
                    m = by_tool.get(tool, {}).get(measure)
                    if not m:
                        continue
                    r = summary["ratios"].get(mode, {}).get(f"{case}.{measure}", {}).get(tool)
                    out.append(
                        f"| {mode} | {case} | {measure_name(measure)} | {tool} | {m['wall']:.2f} | {m['cpu']:.2f} | "
                        f"{m['rss_mb']:.0f} | {'' if r is None else format(r, '.2f') + '×'} |"
                    )
    out += ["", "| target | mode | measured | limit | met | detail |", "|---|---|---:|---:|---|---|"]
    for t in tgt:
        measured = "–" if t["measured"] is None else t["measured"]
        out.append(f"| {t['target']} | {t['mode']} | {measured} | {t['limit']} | {MARK[t['met']]} | {t['detail']} |")
    return "\n".join(out) + "\n"

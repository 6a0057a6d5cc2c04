"""bench.targets and bench.plan: medians, best peers, met/missed at the limits, and the time budget."""

from __future__ import annotations

from typing import Any

import pytest

from bench import plan
from bench.targets import best_peer, render_markdown, render_text, summarize, targets


def cell(wall: list[float], cpu: list[float] | None = None, rss: float = 100.0, **extra: list[float]) -> dict[str, Any]:
    return {"wall": wall, "cpu": cpu or wall, "rss_mb": [rss] * len(wall), **extra}


def by_target(tgt: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in tgt}


def results() -> dict[str, Any]:
    return {
        "pinned": {
            "media": {
                "azphotosync": {
                    "first_sync": cell([5.0, 6.0, 7.0]),
                    "restore": cell([4.0]),
                    "verify_deep": cell([3.0]),
                },
                "rclone": {"first_sync": cell([7.0, 8.0, 9.0]), "restore": cell([5.0]), "verify_deep": cell([2.0])},
                "azcopy": {"first_sync": cell([6.0]), "restore": cell([4.0])},
                "sdk": {"first_sync": cell([9.0])},
            },
            "big": {"azphotosync": {"first_sync": cell([10.0], rss=151.0)}, "rclone": {"first_sync": cell([12.0])}},
            "scale": {
                "azphotosync": {"rerun_unchanged": cell([0.5])},
                "rclone": {"rerun_unchanged": cell([12.0])},
                "azcopy": {"rerun_unchanged": cell([10.0])},
            },
            "rows": {
                "azphotosync": {
                    "rerun_rows_10000": cell([1.0]),
                    "rerun_rows_100000": cell([1.1]),
                    "rerun_rows_1000000": cell([1.25]),
                }
            },
        },
        "shared": {
            "tiny": {
                "azphotosync": {"first_sync": cell([40.0], cpu=[20.0], mirror_s=[0.8])},
                "rclone": {"first_sync": cell([40.0], cpu=[10.0])},
            },
            "hash": {"hashlib_file": {"throughput": {"mb_s": [900.0]}}},
        },
    }


def test_medians_and_ratios_per_mode() -> None:
    s = summarize(results())
    assert s["medians"]["pinned"]["media"]["azphotosync"]["first_sync"]["wall"] == 6.0
    assert s["ratios"]["pinned"]["media.first_sync"] == {"rclone": 0.75, "azcopy": 1.0, "sdk": 0.667}
    assert s["ratios"]["shared"]["tiny.first_sync"] == {"rclone": 1.0}
    assert best_peer(s["medians"], "pinned", "media", "first_sync") == ("azcopy", 6.0)
    assert best_peer(s["medians"], "shared", "media", "first_sync") is None


def test_targets_met_missed_and_not_measured() -> None:
    t = by_target(targets(summarize(results())))
    media = t["media first sync wall <= 1.0x best peer"]
    assert (media["measured"], media["met"]) == (1.0, True)  # level with the best peer (azcopy) is met
    assert "azcopy" in media["detail"]
    assert t["media first sync wall <= 0.8x rclone"]["met"] is True  # 0.75
    assert t["media restore wall <= 1.0x best peer"]["met"] is True  # 4.0 vs azcopy 4.0
    assert t["media deep verify / `rclone check --download` wall <= 1.0x best peer"]["met"] is False  # 1.5x
    assert t["big first sync wall <= 1.0x best peer"]["met"] is True
    assert t["tiny restore wall <= 1.0x best peer"]["met"] is None  # not measured
    cpu = t["tiny first sync CPU s <= rclone's"]
    assert (cpu["mode"], cpu["measured"], cpu["met"]) == ("shared", 2.0, False)
    wall = t["tiny first sync wall <= 1.0x rclone"]
    assert (wall["measured"], wall["met"]) == (1.0, True) and "Table mirror 0.80 s (2%)" in wall["detail"]
    assert t["scale first sync CPU s <= rclone's"]["met"] is None
    rerun = t["unchanged rerun of scale >= 20x faster than the best peer"]
    assert (rerun["measured"], rerun["met"]) == (20.0, True)  # azcopy's 10 s ÷ 0.5 s: exactly 20 is met
    rows = t["rerun flat as the index grows (most rows <= 1.25x fewest)"]
    assert (rows["measured"], rows["met"]) == (1.25, True)
    assert "1,000,000 rows 1.25 s" in rows["detail"]
    rss = t["peak RSS <= 150 MB in every case"]
    assert (rss["measured"], rss["met"], rss["detail"]) == (151.0, False, "pinned big first_sync")


def test_targets_just_past_the_limits_are_missed() -> None:
    r = results()
    r["pinned"]["scale"]["azphotosync"]["rerun_unchanged"] = cell([0.51])
    r["pinned"]["rows"]["azphotosync"]["rerun_rows_1000000"] = cell([1.26])
    r["pinned"]["media"]["azphotosync"]["first_sync"] = cell([6.01])
    t = by_target(targets(summarize(r)))
    assert t["unchanged rerun of scale >= 20x faster than the best peer"]["met"] is False
    assert t["rerun flat as the index grows (most rows <= 1.25x fewest)"]["met"] is False
    assert t["media first sync wall <= 1.0x best peer"]["met"] is False


def test_cpu_target_falls_back_to_the_pinned_mode() -> None:
    r = {"pinned": {"scale": {"azphotosync": {"first_sync": cell([9.0], cpu=[4.0])},
                              "rclone": {"first_sync": cell([8.0], cpu=[5.0])}}}}  # fmt: skip
    t = by_target(targets(summarize(r)))["scale first sync CPU s <= rclone's"]
    assert (t["mode"], t["measured"], t["met"]) == ("pinned", 0.8, True)


def test_tables_show_both_modes_and_every_target() -> None:
    s = summarize(results())
    tgt = targets(s)
    text = render_text("# title", s, tgt)
    assert "pinned  media" in text and "shared  tiny" in text and "MISSED" in text
    assert text.count("\n  [") == len(tgt)
    md = render_markdown(s, tgt)
    assert "| shared | tiny | first sync | rclone | 40.00 | 10.00 |" in md
    assert "peers: MD5" in md  # the restore rows say what each side checks


def test_full_run_fits_40_minutes_and_quick_5() -> None:
    assert plan.estimate_seconds(False, 3) <= 40 * 60
    assert plan.estimate_seconds(True, 1) <= 5 * 60
    assert plan.estimate_seconds(False, 3, all_peers=True) > plan.estimate_seconds(False, 3)


def test_plan_measures_what_every_target_reads() -> None:
    from bench.targets import PINNED_WALL

    for case, measure in PINNED_WALL:
        c = plan.cell(case, measure, tools=plan.ALL_TOOLS, modes=plan.BOTH)
        assert "azphotosync" in c.pinned and set(c.pinned) & set(plan.PEERS), (case, measure)
    for case in ("tiny", "scale"):
        c = plan.cell(case, "first_sync", tools=plan.ALL_TOOLS, modes=plan.BOTH)
        assert {"azphotosync", "rclone"} <= set(c.shared)
    assert plan.cell("scale", "rerun_unchanged", tools=plan.ALL_TOOLS, modes=plan.BOTH).pinned == (
        "azphotosync", "rclone", "azcopy")  # fmt: skip


@pytest.mark.parametrize("modes", [("pinned",), ("shared",)])
def test_cells_narrow_to_the_modes_and_tools_asked_for(modes: tuple[str, ...]) -> None:
    c = plan.cell("tiny", "first_sync", tools=("azphotosync", "sdk"), modes=modes, all_peers=True)
    assert list(c.by_mode) == list(modes)
    assert set(next(iter(c.by_mode.values()))) == {"azphotosync", "sdk"}


def test_restore_targets_say_the_time_to_disk_beside_the_command() -> None:
    r = results()
    media = r["pinned"]["media"]
    media["azphotosync"]["restore"] = cell([4.0, 4.2, 4.4], to_disk_s=[4.1, 4.3, 4.5])
    media["rclone"]["restore"] = cell([3.0], to_disk_s=[5.0])
    media["azcopy"]["restore"] = cell([3.5], to_disk_s=[4.7])
    t = by_target(targets(summarize(r)))["media restore wall <= 1.0x best peer"]
    assert t["met"] is False and t["measured"] == round(4.2 / 3.0, 3)  # the target reads the command
    assert t["detail"] == "4.20 s vs rclone 3.00 s; to disk (command + sync): 4.30 s vs azcopy 4.70 s"

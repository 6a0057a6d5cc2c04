"""bench.v8profile: samples go to the first phase found from the leaf up; idle and GC stay apart."""

from __future__ import annotations

from bench.v8profile import summarize


def _node(nid: int, name: str, children: list[int]) -> dict[str, object]:
    frame = {"functionName": name, "url": "file:///x/src/mod.js", "lineNumber": nid}
    return {"id": nid, "callFrame": frame, "children": children}


def test_phases_first_match_from_the_leaf() -> None:
    nodes = [
        _node(1, "(root)", [2, 3, 4, 7]),
        _node(2, "(idle)", []),
        _node(3, "(garbage collector)", []),
        _node(4, "serializerMiddleware", [5]),
        _node(5, "queryEntities", [6]),  # a Table query under the serializer counts as the query
        _node(6, "evaluate", []),
        _node(7, "helper", []),
    ]
    # samples (node ids) and the microseconds before each
    samples = [2, 2, 3, 6, 6, 6, 4, 7]
    deltas = [1_000_000, 1_000_000, 500_000, 200_000, 200_000, 200_000, 300_000, 100_000]
    out = summarize({"nodes": nodes, "samples": samples, "timeDeltas": deltas}, top=3)
    lines = out.splitlines()
    assert lines[0] == "profile span 3.5 s, busy (not idle) 1.5 s"
    phases = dict(reversed(line.split(" s  ", 1)) for line in lines[1:6])
    assert phases == {
        "idle": "   2.00",
        "Table query pages (scan, sort, JSON)": "   0.60",
        "garbage collection": "   0.50",
        "blob listing: XML response serialization": "   0.30",
        "other": "   0.10",
    }
    inclusive = out.split("-- inclusive\n", 1)[1].splitlines()
    assert inclusive[0].startswith("   3.50 s  (root)")
    assert inclusive[1].startswith("   2.00 s  (idle)")
    assert "   0.90 s  serializerMiddleware" in out  # its own 0.3 s plus the query beneath it

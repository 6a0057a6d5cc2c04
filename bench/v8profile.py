"""Summarise a V8 ``.cpuprofile`` of Azurite: where the emulator's one JavaScript thread spent its time.

Our own profiles (``bench.profile``) show the client; when the client waits, the question is what the
service does meanwhile. Start Azurite under the profiler (``node --cpu-prof --cpu-prof-dir=DIR
node_modules/azurite/dist/src/azurite.js ...``; it writes the profile when stopped with SIGINT) and run:

    .venv/bin/python -m bench.v8profile DIR/CPU.*.cpuprofile

Each sample is attributed to the first phase found walking up its stack (:data:`PHASES`), then the
hottest functions are listed by self and inclusive time.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any

# (function name or fragment, phase); the first match from the leaf up wins.
PHASES: tuple[tuple[str, str], ...] = (
    ("(idle)", "idle"),
    ("(garbage collector)", "garbage collection"),
    ("saveDatabase", "metadata store save (autosave after writes)"),
    ("loadJSON", "metadata store load (start-up)"),
    ("loadDatabase", "metadata store load (start-up)"),
    ("queryEntities", "Table query pages (scan, sort, JSON)"),
    ("readPage", "blob listing: store scan and sort"),
    ("listBlobFlatSegment", "blob listing: handler"),
    ("listBlobHierarchySegment", "blob listing: handler"),
    ("serializerMiddleware", "blob listing: XML response serialization"),
    ("batch", "Table batch"),
    ("upload", "blob upload"),
    ("commitBlockList", "blob upload"),
)
_EXACT = {"(idle)", "(garbage collector)"}


def _label(node: dict[str, Any]) -> str:
    cf = node["callFrame"]
    where = "/".join(cf["url"].rsplit("/", 2)[-2:]) if cf["url"] else ""
    return f"{cf['functionName'] or '(anon)'} {where}:{cf['lineNumber']}"


def _phase(name: str) -> str | None:
    for key, phase in PHASES:
        if name == key or (key not in _EXACT and key in name):
            return phase
    return None


def summarize(profile: dict[str, Any], top: int = 30) -> str:
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    per_node: collections.Counter[int] = collections.Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        per_node[sample] += delta
    phases: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for nid, t in per_node.items():
        own[_label(nodes[nid])] += t
        phase, seen, x = None, set(), nid
        while x is not None:
            node = nodes[x]
            phase = phase or _phase(node["callFrame"]["functionName"])
            label = _label(node)
            if label not in seen:
                incl[label] += t
                seen.add(label)
            x = parent.get(x)
        phases[phase or "other"] += t
    busy = sum(v for k, v in phases.items() if k != "idle")
    lines = [f"profile span {sum(phases.values()) / 1e6:.1f} s, busy (not idle) {busy / 1e6:.1f} s"]
    lines += [f"{v / 1e6:7.2f} s  {k}" for k, v in phases.most_common()]
    lines += ["", "-- self"] + [f"{t / 1e6:7.2f} s  {k}" for k, t in own.most_common(top)]
    lines += ["", "-- inclusive"] + [f"{t / 1e6:7.2f} s  {k}" for k, t in incl.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    print(summarize(json.loads(a.profile.read_text()), a.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The catalog's gzip JSON: the same document as one ``json.dumps``, written without the whole text in memory."""

from __future__ import annotations

import gzip
import json
import tracemalloc

from sync_core.derived.catalog import gzip_json


def doc_of(n: int) -> dict[str, object]:
    items = [{"id": f"{i:024x}", "n": f"2024/IMG_{i:06d}.jpg", "b": f"photos/x/{i:064x}/IMG_{i:06d}.jpg",
              "t": "2024-05-01T10:00:00Z", "v": None, "w": 4000} for i in range(n)]  # fmt: skip
    return {"schema": 1, "prefix": "photos/x", "built_at": "2026-12-07T00:00:00Z", "items": items,
            "albums": {"Trip \u00e9t\u00e9": [f"{i:024x}" for i in range(3)]}}  # fmt: skip


def test_same_document_in_any_batch_of_items() -> None:
    for n in (0, 1, 999, 1000, 1001, 2500):
        doc = doc_of(n)
        raw = gzip_json(doc)
        assert json.loads(gzip.decompress(raw)) == doc
        assert list(json.loads(gzip.decompress(raw))) == list(doc)  # keys in the document's order


def test_the_text_never_exists_whole() -> None:
    doc = doc_of(30_000)
    text = len(json.dumps(doc, separators=(",", ":")))
    tracemalloc.start()
    try:
        gzip_json(doc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < text / 4, (peak, text)

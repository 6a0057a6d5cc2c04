"""The catalog's gzip JSON: the same document as one ``json.dumps``, written without the whole text in memory,
and rebuilt without its items in memory."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from pathlib import Path

from sync_core.derived.albums import AlbumStore
from sync_core.derived.catalog import ItemSpool, build_catalog, catalog_blob_name, gzip_json, refresh_catalog
from tests.gallery_library import build_library


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


def test_spool_gives_the_order_of_a_reverse_sort_ties_and_any_name_included() -> None:
    rng = random.Random(7)
    names = ["a.jpg", "b.jpg", "é.jpg", "日本.jpg", "\U0001f600.jpg", "\udcff.jpg", "\ue000.jpg", "Z.jpg", "a.jpg"]
    times = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z", "2023-12-31T23:59:59Z", "", "2024-05-01T10:00:00Z"]
    items = [{"id": f"{i:024x}", "n": rng.choice(names), "t": rng.choice(times), "z": i} for i in range(500)]
    with ItemSpool() as spool:
        for it in items:
            spool.add(it)
        assert spool.count == len(items)
        assert list(spool.items()) == sorted(items, key=lambda it: (it["t"][:19], it["n"]), reverse=True)
        assert [json.loads(t) for t in spool.encoded()] == list(spool.items())


def test_spool_holds_no_item_in_memory() -> None:
    doc = doc_of(30_000)
    held = len(json.dumps(doc, separators=(",", ":")))
    items = doc.pop("items")
    assert isinstance(items, list)
    tracemalloc.start()
    try:
        with ItemSpool() as spool:
            for it in items:
                spool.add(it)
            raw = gzip_json({**doc, "items": []}, spool.encoded())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert json.loads(gzip.decompress(raw))["items"] == sorted(items, key=lambda it: (it["t"], it["n"]), reverse=True)
    assert peak < held / 4, (peak, held)


def test_refresh_stores_the_document_build_returns(azurite, tmp_path: Path) -> None:
    lib = build_library(azurite.connection_string, tmp_path)
    assert AlbumStore(lib.table, "test").albums()  # the albums are resolved from the spool too
    count = refresh_catalog(lib.table, lib.thumbnails, lib.prefix)
    raw = lib.thumbnails.download_blob(catalog_blob_name(lib.prefix), decompress=False).readall()
    stored = json.loads(gzip.decompress(raw))
    built = build_catalog(lib.table, lib.prefix)
    assert count == len(built["items"]) > 1
    assert {**stored, "built_at": ""} == {**built, "built_at": ""}
    assert list(stored) == list(built)


def test_refresh_of_many_rows_holds_a_page_not_the_items(azurite, tmp_path: Path) -> None:
    """The rebuild after a large first sync: its Python memory is a query page and a gzip buffer, not the
    items (which :func:`build_catalog` holds)."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    from bench.rows import seed_rows

    name = f"spool{random.Random().getrandbits(40):x}"
    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table(name)
    thumbs = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    seed_rows(table, "photos", "spooltest", start=0, stop=12_000)
    tracemalloc.start()
    try:
        items = len(build_catalog(table, "photos")["items"])
        _, held = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = refresh_catalog(table, thumbs, "photos")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == items == 12_000
    assert peak < held / 2, (peak, held)

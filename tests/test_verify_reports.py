"""Reports: the dated document, latest.json only moving forward, the runs table, and the reader that
``azphotosync status`` uses — against Azurite."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from sync_core.errors import ConfigError
from sync_core.sizes import parse_size
from sync_core.verify.reports import (
    LATEST_NAME,
    build_report,
    clear_staged,
    collect_staged,
    read_latest_report,
    report_is_clean,
    stage_problems,
    write_report,
    write_run_row,
)


def _report(run_id: str, started: str, **counts: int) -> dict:
    summary = {"partitions": 256, "rows": 10, "counts": {"ok": 10, **counts}}
    return build_report(
        run_id=run_id, started_at=started, finished_at=started, container="c", table="t", summary=summary,
        problems=[{"blob_name": "photos/x/ab/…", "verdict": "missing", "detail": "gone"}] if counts else [],
    )  # fmt: skip


@pytest.fixture
def blob_svc(azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def test_reader_returns_none_before_any_report(blob_svc):
    name = f"r{uuid.uuid4().hex[:12]}"
    assert read_latest_report(blob_svc, name) is None  # container missing
    blob_svc.create_container(name)
    assert read_latest_report(blob_svc, name) is None  # container empty


def test_latest_only_moves_forward_and_dated_reports_stay(blob_svc):
    name = f"r{uuid.uuid4().hex[:12]}"
    new = _report("run2", "2026-11-25T03:00:00Z", missing=1)
    old = _report("run1", "2026-11-24T03:00:00Z")
    assert write_report(blob_svc, name, new) == "reports/20261125T030000Z-run2.json"
    write_report(blob_svc, name, old)  # a slow older run finishing late
    write_report(blob_svc, name, new)  # a retried step: idempotent
    latest = read_latest_report(blob_svc, name)
    assert latest is not None and latest["run_id"] == "run2" and latest["counts"]["missing"] == 1
    assert latest["problems"] == [{"blob_name": "photos/x/ab/…", "verdict": "missing", "detail": "gone"}]
    names = sorted(b.name for b in blob_svc.get_container_client(name).list_blobs())
    assert names == ["reports/20261124T030000Z-run1.json", "reports/20261125T030000Z-run2.json", LATEST_NAME]
    newer = _report("run3", "2026-11-26T03:00:00Z")
    write_report(blob_svc, name, newer)
    assert read_latest_report(blob_svc, name)["run_id"] == "run3"
    assert not report_is_clean(new) and report_is_clean(newer)


def test_reader_rejects_a_foreign_latest(blob_svc):
    name = f"r{uuid.uuid4().hex[:12]}"
    blob_svc.create_container(name)
    blob_svc.get_blob_client(name, LATEST_NAME).upload_blob(b"not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_latest_report(blob_svc, name)


def test_runs_table_newest_first(azurite):
    svc = TableServiceClient.from_connection_string(azurite.connection_string)
    table = f"runs{uuid.uuid4().hex[:12]}"
    for run_id, ts in (("a", "2026-11-24T03:00:00Z"), ("c", "2026-11-26T03:00:00Z"), ("b", "2026-11-25T03:00:00Z")):
        write_run_row(svc, table, _report(run_id, ts, missing=1), f"reports/{run_id}.json")
    rows = list(svc.get_table_client(table).query_entities("PartitionKey eq 'run'"))
    assert [r["RunId"] for r in rows] == ["c", "b", "a"]
    assert rows[0]["CountMissing"] == 1 and rows[0]["Problems"] == 1 and rows[0]["Report"] == "reports/c.json"


def test_staged_problems_round_trip(blob_svc):
    name = f"r{uuid.uuid4().hex[:12]}"
    stage_problems(blob_svc, name, "run", "photos/x/0b", [{"blob_name": "b", "verdict": "orphan", "detail": ""}])
    stage_problems(blob_svc, name, "run", "photos/x/0a", [{"blob_name": "a", "verdict": "missing", "detail": ""}])
    stage_problems(blob_svc, name, "run", "photos/x/0c", [])
    assert [p["blob_name"] for p in collect_staged(blob_svc, name, "run")] == ["a", "b"]
    clear_staged(blob_svc, name, "run")
    assert collect_staged(blob_svc, name, "run") == []


@pytest.mark.parametrize(
    ("text", "value"), [("500MB", 500_000_000), ("2GiB", 2 * 1024**3), ("0", 0), ("1.5 GB", 1_500_000_000)]
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["abc", "-1", "", "2 parsecs", "1e9"])
def test_parse_size_rejects(text):
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size(text)

"""The renditions orchestrators, replayed through the real azure-functions-durable SDK (the host stand-in
of tests/test_orchestrator.py), and end to end with their activities against Azurite."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import uuid

import pytest
from azure.data.tables import TableServiceClient
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as E
from azure.storage.blob import BlobServiceClient
from PIL import Image

import function_app
from sync_core.derived.catalog import catalog_blob_name
from sync_core.derived.facts import read_facts
from sync_core.derived.renditions import rendition_name
from sync_core.index.table_index import keys_for_blob
from sync_core.verify.partition import partitions_for
from tests.conftest import run_cli, write_file
from tests.rendition_media import jpeg_oriented, mp4
from tests.test_orchestrator import (
    CALL_ACTIVITY_WITH_RETRY,
    CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    DurableHost,
    History,
    registered,
    replay,
)

IID = function_app.THUMBNAILS_INSTANCE_ID


def _partition_summary(partition: str, made: int = 1) -> dict:
    return {"partition": partition, "rows": 2, "counts": {"made": made, "done_before": 1}}


def test_first_episode_schedules_only_the_plan():
    state = replay(registered()["thumbnails_orchestrator"], History("thumbnails_orchestrator", {}, IID))
    assert state["isDone"] is False
    assert [[(a["actionType"], a["functionName"]) for a in g] for g in state["actions"]] == [
        [(CALL_ACTIVITY_WITH_RETRY, "plan_thumbnails")]
    ]
    assert state["actions"][0][0]["retryOptions"]["maxNumberOfAttempts"] == 3


def test_fan_out_is_bounded_like_verification():
    fns = registered()
    h = History("thumbnails_orchestrator", {"run_id": "t1"}, IID)
    h.add(E.TASK_SCHEDULED, h.take_id(), Name="plan_thumbnails")
    h.new_episode()
    prefixes = [f"photos/dev{i}" for i in range(6)]
    h.add(E.TASK_COMPLETED, TaskScheduledId=0, Result=json.dumps({"prefixes": prefixes}))
    state = replay(fns["thumbnails_orchestrator"], h)
    fan_out = state["actions"][1]
    assert len(fan_out) == function_app.PREFIX_FANOUT
    assert {a["actionType"] for a in fan_out} == {CALL_SUB_ORCHESTRATOR_WITH_RETRY}
    assert json.loads(fan_out[0]["input"]) == {"run_id": "t1", "prefix": "photos/dev0"}
    assert [a["instanceId"] for a in fan_out] == ["t1-t0", "t1-t1", "t1-t2", "t1-t3"]

    child_input = {"run_id": "t1", "prefix": "photos/dev0"}
    child = replay(fns["thumbnails_prefix"], History("thumbnails_prefix", child_input, "t1-t0"))
    batch = child["actions"][0]
    assert len(batch) == function_app.BATCH
    assert [json.loads(a["input"])["partition"] for a in batch] == partitions_for(["photos/dev0"])[:32]
    assert all(a["functionName"] == "thumbnail_partition" and len(a["input"]) < 200 for a in batch)


def test_a_failing_partition_is_retried_then_reported_and_the_run_still_finishes():
    tries: list[str] = []

    def partition(job: dict) -> dict:
        if job["partition"] == "photos/a/40":
            tries.append(job["partition"])
            raise RuntimeError("table service unavailable")
        return _partition_summary(job["partition"])

    host = DurableHost({"plan_thumbnails": lambda job: {"prefixes": ["photos/a", "photos/b"]},
                        "thumbnail_partition": partition,
                        "refresh_catalog": lambda job: {"prefix": job["prefix"], "items": 2}})  # fmt: skip
    state = host.run("thumbnails_orchestrator", {"run_id": "t2"}, instance_id=IID)
    assert state["isDone"] is True, state
    out = state["output"]
    assert len(tries) == 3
    assert out["partitions"] == 512 - 32 and out["counts"]["made"] == 512 - 32
    assert out["counts"]["done_before"] == 512 - 32 and out["rows"] == 2 * (512 - 32)
    assert len(out["errors"]) == 1 and "photos/a/40 … photos/a/5f" in out["errors"][0]
    assert out["prefixes"] == ["photos/a", "photos/b"] and out["run_id"] == "t2"


def test_the_catalog_is_refreshed_once_per_prefix_after_its_partitions_and_a_failure_is_reported():
    tries: list[str] = []

    def refresh(job: dict) -> dict:
        tries.append(job["prefix"])
        if job["prefix"] == "photos/b":
            raise RuntimeError("thumbnails container unavailable")
        return {"prefix": job["prefix"], "items": 7}

    host = DurableHost({"plan_thumbnails": lambda job: {"prefixes": ["photos/a", "photos/b"]},
                        "thumbnail_partition": lambda job: _partition_summary(job["partition"]),
                        "refresh_catalog": refresh})  # fmt: skip
    state = host.run("thumbnails_orchestrator", {"run_id": "t3"}, instance_id=IID)
    assert state["isDone"] is True, state
    out = state["output"]
    assert sorted(tries) == ["photos/a"] + ["photos/b"] * 3  # retried like every activity
    assert out["partitions"] == 512 and out["counts"]["made"] == 512  # the renditions are not undone
    assert len(out["errors"]) == 1 and out["errors"][0].startswith("catalog of photos/b: ")
    for prefix in ("photos/a", "photos/b"):
        mine = (job.get("prefix") or job.get("partition", "").rpartition("/")[0] for _, job in host.calls)
        calls = [n for (n, _), p in zip(host.calls, mine, strict=True) if p == prefix]
        assert calls.index("refresh_catalog") == 256  # scheduled once all 256 partitions are done


# -- end to end against Azurite --------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def thumbs_env(storage_env, container, monkeypatch) -> str:
    name = f"th{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AZURE_STORAGE_THUMBNAILS_CONTAINER", name)
    return name


def test_end_to_end_renditions_facts_and_a_rerun_that_makes_nothing(azurite, storage_env, thumbs_env, tmp_path):
    files = {"2024/portrait.jpg": jpeg_oriented(400, 300, 6), "2024/clip.mp4": mp4(seconds=2.0),
             "2024/broken.jpg": jpeg_oriented()[:1500], "2024/empty.jpg": b""}  # fmt: skip
    src = tmp_path / "lib"
    for rel, data in files.items():
        write_file(src, rel, data)
    assert run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / "state")).code == 0

    host = DurableHost()
    state = host.run("thumbnails_orchestrator", {"run_id": "e1"}, instance_id=IID)
    assert state["isDone"] is True, state
    out = state["output"]
    assert out["errors"] == [] and out["prefixes"] == ["photos/testhost"] and out["partitions"] == 256
    assert out["counts"]["made"] == 2 and out["counts"]["failed"] == 2 and out["rows"] == 4
    assert {n for n, _ in host.calls} == {"plan_thumbnails", "thumbnail_partition", "refresh_catalog"}
    assert [n for n, _ in host.calls][-1] == "refresh_catalog"  # after every partition of the prefix

    thumbs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(thumbs_env)
    body = thumbs.download_blob(rendition_name(_sha(files["2024/portrait.jpg"]), 320)).readall()
    assert Image.open(io.BytesIO(body)).size == (240, 320)
    names = [b.name for b in thumbs.list_blobs()]
    assert len([n for n in names if not n.startswith("catalog/")]) == 4  # and the gallery's catalog
    assert catalog_blob_name("photos/testhost") in names
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )

    def facts(rel: str):
        sha = _sha(files[rel])
        return read_facts(table.get_entity(*keys_for_blob("photos/testhost", f"photos/testhost/{sha[:2]}/{sha}/{rel}")))

    assert facts("2024/clip.mp4").duration == pytest.approx(2.0, abs=0.2)
    assert facts("2024/empty.jpg").detail == "empty file (0 bytes)"
    assert facts("2024/broken.jpg").state == "failed"

    # the gallery's catalog shows the renditions' state
    raw = thumbs.download_blob(catalog_blob_name("photos/testhost"), decompress=False).readall()
    items = {it["n"]: it for it in json.loads(gzip.decompress(raw))["items"]}
    assert {n: it["rs"] for n, it in items.items()} == {"2024/portrait.jpg": "made", "2024/clip.mp4": "made",
                                                        "2024/broken.jpg": "failed", "2024/empty.jpg": "failed"}
    assert (items["2024/portrait.jpg"]["w"], items["2024/portrait.jpg"]["h"]) == (300, 400)

    state2 = DurableHost().run("thumbnails_orchestrator", {"run_id": "e2"}, instance_id=IID)
    counts = state2["output"]["counts"]
    assert counts["made"] == 0 and counts["failed"] == 0 and counts["done_before"] == 4

"""The verification orchestrators, replayed through the real azure-functions-durable SDK.

No Functions host can run here, so :class:`DurableHost` plays its part: it builds the history the Durable
extension would write (ExecutionStarted, TaskScheduled, TaskCompleted/Failed, retry timers,
sub-orchestration events), replays it with ``Orchestrator(fn).handle(DurableOrchestrationContext
.from_json(...))`` and, for the end-to-end test, executes every scheduled activity for real against
Azurite and feeds the results back as history — episode after episode until the orchestration is done.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.durable_functions import DurableOrchestrationContext, Orchestrator
from azure.durable_functions.constants import DATETIME_STRING_FORMAT
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as E
from azure.storage.blob import BlobServiceClient

import function_app
from sync_core.contracts.blobmeta import BlobMeta, build_metadata
from sync_core.index.table_index import P_BLOB_ETAG, P_LAST_DEEP_VERIFIED, P_SIZE, P_VERIFY_STATUS, keys_for_blob
from sync_core.verify.partition import partitions_for, plain
from sync_core.verify.reports import read_latest_report
from tests.conftest import det_bytes, run_cli, write_file

CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR_WITH_RETRY, CREATE_TIMER = 1, 3, 5
T0 = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)


@functools.cache
def app_functions() -> list[Any]:
    """The app's functions as the worker indexes them (``get_functions()`` may run once per app)."""
    return function_app.app.get_functions()


def registered() -> dict[str, Any]:
    """name -> user function, as the app registers them (orchestrators: the generator function)."""
    out: dict[str, Any] = {}
    for fn in app_functions():
        user = fn.get_user_function()
        out[fn.get_function_name()] = getattr(user, "orchestrator_function", user)
    return out


class History:
    """An orchestration's history in the JSON the Durable extension hands to the Python worker."""

    def __init__(self, name: str, input_: Any, instance_id: str, start: datetime = T0):
        self.name, self.input, self.instance_id = name, json.dumps(input_), instance_id
        self.events: list[dict[str, Any]] = []
        self.clock = start
        self.next_id = 0
        self.add(E.ORCHESTRATOR_STARTED)
        instance = {"InstanceId": instance_id, "ExecutionId": uuid.uuid4().hex}
        self.add(E.EXECUTION_STARTED, Name=name, Version="", Input=self.input, OrchestrationInstance=instance)

    def add(self, kind: E, event_id: int = -1, **fields: Any) -> None:
        self.clock += timedelta(seconds=1)
        stamp = self.clock.strftime(DATETIME_STRING_FORMAT)
        self.events.append(
            {"EventType": int(kind), "EventId": event_id, "IsPlayed": False, "Timestamp": stamp, **fields}
        )

    def new_episode(self) -> None:
        self.add(E.ORCHESTRATOR_COMPLETED)
        self.add(E.ORCHESTRATOR_STARTED)

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def to_json(self) -> str:
        return json.dumps(
            {"history": self.events, "input": self.input, "instanceId": self.instance_id, "isReplaying": False,
             "parentInstanceId": None, "upperSchemaVersion": 0}
        )  # fmt: skip


def replay(fn: Callable, history: History) -> dict[str, Any]:
    """One episode through the real SDK. A failed orchestration raises with its state after a marker,
    which is what the worker hands back to the host."""
    try:
        return json.loads(Orchestrator(fn).handle(DurableOrchestrationContext.from_json(history.to_json())))
    except Exception as exc:
        text = str(exc)
        if "$OutOfProcData$:" not in text:
            raise
        return json.loads(text.split("$OutOfProcData$:", 1)[1])


def flat_actions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for group in state["actions"] for a in group]


class ActivityFailed(Exception):
    pass


class DurableHost:
    """Drives orchestrations to completion: replays, schedules, runs activities (in a thread pool, like
    the host's concurrency), retries them as the extension does for ``*_with_retry`` (failure, timer,
    reschedule), and recurses into sub-orchestrations."""

    def __init__(self, activities: dict[str, Callable[[Any], Any]] | None = None, workers: int = 8):
        self.functions = registered()
        self.activities = activities or {}
        self.calls: list[tuple[str, Any]] = []
        self.histories: dict[str, History] = {}
        self.pool = ThreadPoolExecutor(workers)

    def run(self, name: str, input_: Any = None, instance_id: str = "azphotosync-verify") -> dict[str, Any]:
        h = History(name, input_, instance_id)
        self.histories[instance_id] = h
        fn = self.functions[name]
        seen = 0
        for _ in range(1000):
            state = replay(fn, h)
            if state["isDone"] or state.get("error"):
                return state
            actions = flat_actions(state)
            new = actions[seen:]
            assert new, f"{name} waits for nothing: {state}"
            seen = len(actions)
            ids = [h.take_id() for _ in new]
            for a, i in zip(new, ids, strict=True):
                if a["actionType"] == CALL_SUB_ORCHESTRATOR_WITH_RETRY:
                    h.add(E.SUB_ORCHESTRATION_INSTANCE_CREATED, i, Name=a["functionName"], Input=a["input"],
                          InstanceId=a["instanceId"])  # fmt: skip
                else:
                    assert a["actionType"] == CALL_ACTIVITY_WITH_RETRY, a
                    h.add(E.TASK_SCHEDULED, i, Name=a["functionName"], Input=a["input"])
            h.new_episode()
            attempts = list(self.pool.map(self._attempts, new))
            # Successes first, then retry chains: the SDK numbers retry timers as it reads the failures.
            order = sorted(range(len(new)), key=lambda k: attempts[k][-1][0] != "ok")
            for k in order:
                self._record(h, new[k], ids[k], attempts[k])
            h.new_episode()
        raise AssertionError("orchestration did not finish")

    def _attempts(self, action: dict[str, Any]) -> list[tuple[str, Any]]:
        max_attempts = int(action["retryOptions"]["maxNumberOfAttempts"])
        out: list[tuple[str, Any]] = []
        for _ in range(max_attempts):
            try:
                out.append(("ok", self._execute(action)))
                return out
            except Exception as exc:
                out.append(("failed", exc))
        return out

    def _execute(self, action: dict[str, Any]) -> Any:
        name, input_ = action["functionName"], json.loads(action["input"])
        if action["actionType"] == CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            state = self.run(name, input_, action["instanceId"])
            if state.get("error"):
                raise ActivityFailed(state["error"])
            return state["output"]
        self.calls.append((name, input_))
        fn = self.activities.get(name) or self.functions[name]
        return json.loads(json.dumps(fn(input_)))  # through JSON, as the worker does

    def _record(self, h: History, action: dict[str, Any], event_id: int, attempts: list[tuple[str, Any]]) -> None:
        sub = action["actionType"] == CALL_SUB_ORCHESTRATOR_WITH_RETRY
        current = event_id
        for n, (status, value) in enumerate(attempts):
            if n:  # a retry: the extension schedules the same call again under a new id
                current = h.take_id()
                if sub:
                    h.add(E.SUB_ORCHESTRATION_INSTANCE_CREATED, current, Name=action["functionName"],
                          Input=action["input"], InstanceId=action["instanceId"])  # fmt: skip
                else:
                    h.add(E.TASK_SCHEDULED, current, Name=action["functionName"], Input=action["input"])
            if status == "ok":
                kind = E.SUB_ORCHESTRATION_INSTANCE_COMPLETED if sub else E.TASK_COMPLETED
                h.add(kind, TaskScheduledId=current, Result=json.dumps(value))
                return
            kind = E.SUB_ORCHESTRATION_INSTANCE_FAILED if sub else E.TASK_FAILED
            h.add(kind, TaskScheduledId=current, Reason=str(value), Details=type(value).__name__)
            timer = h.take_id()
            h.add(E.TIMER_CREATED, timer, FireAt=h.clock.strftime(DATETIME_STRING_FORMAT))
            h.add(E.TIMER_FIRED, TimerId=timer, FireAt=h.clock.strftime(DATETIME_STRING_FORMAT))


def partition_summary(partition: str, rows: int = 3, **counts: int) -> dict[str, Any]:
    return {"partition": partition, "rows": rows, "blobs": rows, "counts": {"ok": rows, **counts}, "problems": 0,
            "deep_verified": 1, "deep_bytes": 100, "candidate_bytes": 300, "skipped_changed": 0,
            "prefix_bytes": {partition.rsplit("/", 1)[0]: 300},
            "requests": {"listing_pages": 1, "query_pages": 1, "writes": 0}}  # fmt: skip


# -- replay over built histories ------------------------------------------------------------------------------
def test_first_episode_schedules_only_the_plan():
    fn = registered()["verify_orchestrator"]
    state = replay(fn, History("verify_orchestrator", {}, "azphotosync-verify"))
    assert state["isDone"] is False
    assert [[(a["actionType"], a["functionName"]) for a in g] for g in state["actions"]] == [
        [(CALL_ACTIVITY_WITH_RETRY, "plan_verification")]
    ]
    assert state["actions"][0][0]["retryOptions"]["maxNumberOfAttempts"] == 3


def test_fan_out_is_bounded_sub_orchestrations_then_bounded_activity_batches():
    fns = registered()
    h = History("verify_orchestrator", {"run_id": "r1"}, "azphotosync-verify")
    h.add(E.TASK_SCHEDULED, h.take_id(), Name="plan_verification")
    h.new_episode()
    prefixes = [f"photos/dev{i}" for i in range(6)]
    plan = {"prefixes": prefixes, "deep_budget": 1000, "deep_reference": None}
    h.add(E.TASK_COMPLETED, TaskScheduledId=0, Result=json.dumps(plan))
    state = replay(fns["verify_orchestrator"], h)
    fan_out = state["actions"][1]
    assert len(fan_out) == function_app.PREFIX_FANOUT == 4  # not all six at once
    assert {a["actionType"] for a in fan_out} == {CALL_SUB_ORCHESTRATOR_WITH_RETRY}
    inputs = [json.loads(a["input"]) for a in fan_out]
    assert [i["prefix"] for i in inputs] == prefixes[:4]
    assert [a["instanceId"] for a in fan_out] == ["r1-p0", "r1-p1", "r1-p2", "r1-p3"]
    assert inputs[0] == {"run_id": "r1", "started_at": "2026-11-25T03:00:01Z", "deep_budget": 1000,
                         "deep_reference": None, "partitions_total": 6 * 256, "prefix": "photos/dev0"}  # fmt: skip

    child = replay(fns["verify_prefix"], History("verify_prefix", inputs[0], "r1-p0"))
    batch = child["actions"][0]
    assert len(batch) == function_app.BATCH == 32
    assert [json.loads(a["input"])["partition"] for a in batch] == partitions_for(["photos/dev0"])[:32]
    assert all(a["functionName"] == "verify_partition" for a in batch)
    assert all(len(a["input"]) < 400 for a in batch)  # ids and counts, never row lists


def test_fan_in_merges_batches_and_publishes_one_report():
    host = DurableHost(
        {
            "plan_verification": lambda job: {
                "prefixes": ["photos/a", "photos/b"],
                "deep_budget": 0,
                "deep_reference": None,
            },
            "verify_partition": lambda job: partition_summary(job["partition"], missing=1),
            "publish_report": lambda job: {"run_id": job["run_id"], "summary": job["summary"]},
        }
    )
    state = host.run("verify_orchestrator", {"run_id": "r2"})
    assert state["isDone"] is True
    summary = state["output"]["summary"]
    assert summary["partitions"] == 512 and summary["rows"] == 3 * 512
    assert summary["counts"] == {"missing": 512, "ok": 3 * 512}
    assert summary["prefix_bytes"] == {"photos/a": 300 * 256, "photos/b": 300 * 256}
    assert summary["errors"] == [] and summary["prefixes"] == ["photos/a", "photos/b"]
    names = [n for n, _ in host.calls]
    assert names.count("verify_partition") == 512 and names.count("publish_report") == 1
    assert names[0] == "plan_verification" and names[-1] == "publish_report"
    # the child's history holds its own 256 results; the parent's only one summary per prefix
    parent = host.histories["azphotosync-verify"].events
    assert sum(e["EventType"] == E.SUB_ORCHESTRATION_INSTANCE_COMPLETED for e in parent) == 2
    assert sum(e["EventType"] == E.TASK_COMPLETED for e in parent) == 2  # plan + publish


def test_a_failing_activity_is_retried_then_reported_and_the_run_still_finishes():
    bad = "photos/a/05"
    tries: list[str] = []

    def verify(job: dict) -> dict:
        if job["partition"] == bad:
            tries.append(job["partition"])
            raise RuntimeError("table service unavailable")
        return partition_summary(job["partition"])

    host = DurableHost(
        {
            "plan_verification": lambda job: {"prefixes": ["photos/a"], "deep_budget": 0, "deep_reference": None},
            "verify_partition": verify,
            "publish_report": lambda job: job["summary"],
        }
    )
    state = host.run("verify_orchestrator", {"run_id": "r3"})
    assert state["isDone"] is True, state
    assert len(tries) == 3  # RetryOptions: three attempts
    out = state["output"]
    assert out["partitions"] == 256 - 32  # the failed batch is not counted as verified…
    assert len(out["errors"]) == 1 and "photos/a/00 … photos/a/1f" in out["errors"][0]  # …but reported
    assert "table service unavailable" in out["errors"][0]


def test_a_failing_plan_fails_the_orchestration():
    def plan(job: dict) -> dict:
        raise RuntimeError("no such table")

    host = DurableHost({"plan_verification": plan})
    state = host.run("verify_orchestrator", {"run_id": "r4"})
    assert state["isDone"] is False and "no such table" in state["error"]
    assert [n for n, _ in host.calls] == ["plan_verification"] * 3


# -- end to end against Azurite --------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _find_by_shard(shard: str, seed0: int, size: int) -> bytes:
    seed = seed0
    while True:
        data = det_bytes(seed, size)
        if _sha(data).startswith(shard):
            return data
        seed += 1


@pytest.fixture
def verify_env(storage_env, container, monkeypatch) -> dict[str, str]:
    env = {
        "VERIFY_REPORTS_CONTAINER": f"r{uuid.uuid4().hex[:12]}",
        "VERIFY_RUNS_TABLE": f"runs{uuid.uuid4().hex[:12]}",
        "VERIFY_DEEP_BUDGET": "1GiB",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {**storage_env, **env}


def test_end_to_end_faults_are_found_repaired_and_reuploaded(azurite, verify_env, container, tmp_path):
    src = tmp_path / "lib"
    files = {f"2024/img{i:02d}.jpg": det_bytes(100 + i, 3000 + i) for i in range(10)}
    for rel, data in files.items():
        write_file(src, rel, data)
    state_dir = str(tmp_path / "state")
    assert run_cli("sync", "--source", str(src), "--state-dir", state_dir).code == 0
    prefix = "photos/testhost"
    name = {rel: f"{prefix}/{_sha(d)[:2]}/{_sha(d)}/{rel}" for rel, d in files.items()}
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        verify_env["AZURE_STORAGE_TABLE"]
    )
    rels = sorted(files)

    def blob(rel: str):
        return container.get_blob_client(name[rel])

    def row(blob_name: str) -> dict:
        return table.get_entity(*keys_for_blob(prefix, blob_name))

    # 1 deleted blob
    blob(rels[0]).delete_blob()
    # 2 truncated blob (its metadata kept)
    md = blob(rels[1]).get_blob_properties().metadata
    blob(rels[1]).upload_blob(files[rels[1]][:1000], overwrite=True, metadata=md)
    # 3 same-size content swap; the row takes the new etag (as after an adoption), so only a re-hash can tell
    md = blob(rels[2]).get_blob_properties().metadata
    swapped = blob(rels[2]).upload_blob(det_bytes(999, len(files[rels[2]])), overwrite=True, metadata=md)
    table.update_entity({**keys_dict(prefix, name[rels[2]]), P_BLOB_ETAG: swapped["etag"].strip('"')})
    # 4 tampered SHA-256 metadata
    md = blob(rels[3]).get_blob_properties().metadata
    blob(rels[3]).set_blob_metadata({**md, "sha256": "0" * 64})
    # 5 an orphan with good metadata (uploaded by another tool, never indexed)
    good = _find_by_shard(_sha(files[rels[5]])[:2], 5000, 2500)
    good_name = f"{prefix}/{_sha(good)[:2]}/{_sha(good)}/extra/good.jpg"
    meta = BlobMeta(sha256=_sha(good), relpath="extra/good.jpg", size=len(good), mtime_ns=1, source_id="other")
    container.upload_blob(good_name, good, metadata=build_metadata(meta))
    # 6 an orphan with bad metadata
    bad = det_bytes(7000, 2000)
    bad_name = f"{prefix}/{_sha(bad)[:2]}/{_sha(bad)}/extra/bad.jpg"
    container.upload_blob(bad_name, bad, metadata={"sha256": _sha(bad)})
    # 7 a missing row
    table.delete_entity(*keys_for_blob(prefix, name[rels[4]]))

    host = DurableHost()
    state = host.run("verify_orchestrator", {"run_id": "e2e1"})
    assert state["isDone"] is True, state
    out = state["output"]
    assert out["run_id"] == "e2e1" and out["clean"] is False and out["errors"] == 0
    assert {n for n, _ in host.calls} == {"plan_verification", "verify_partition", "publish_report"}

    report = read_latest_report(blobs, verify_env["VERIFY_REPORTS_CONTAINER"])
    assert report is not None and report["run_id"] == "e2e1" and out["report"].endswith("-e2e1.json")
    verdicts = {p["blob_name"]: p["verdict"] for p in report["problems"]}
    assert verdicts == {
        name[rels[0]]: "missing",
        name[rels[1]]: "size_mismatch",
        name[rels[2]]: "sha_mismatch",
        name[rels[3]]: "sha_mismatch",
        good_name: "orphan_repaired",
        bad_name: "orphan",
        name[rels[4]]: "orphan_repaired",
    }
    assert "re-hash" in next(p["detail"] for p in report["problems"] if p["blob_name"] == name[rels[2]])
    assert report["counts"] == {"ok": 5, "missing": 1, "size_mismatch": 1, "etag_mismatch": 0, "sha_mismatch": 2,
                                "sha_missing": 0, "orphan_repaired": 2, "orphan": 1}  # fmt: skip
    assert report["partitions"] == 256 and report["rows"] == 9  # rows as queried (one was missing)
    assert report["requests"]["listing_pages"] == 256 and report["requests"]["query_pages"] == 256
    # verdicts are in the rows, repaired rows are back, staging is cleaned up
    assert row(name[rels[0]])[P_VERIFY_STATUS] == "missing"
    assert row(name[rels[2]])[P_LAST_DEEP_VERIFIED] is not None
    repaired = row(good_name)
    assert plain(repaired[P_SIZE]) == len(good) and repaired[P_VERIFY_STATUS] == "orphan_repaired"
    assert row(name[rels[4]])["RelPath"] == rels[4]
    reports_c = blobs.get_container_client(verify_env["VERIFY_REPORTS_CONTAINER"])
    assert not list(reports_c.list_blobs(name_starts_with="staging/"))
    runs = list(TableServiceClient.from_connection_string(azurite.connection_string)
                .get_table_client(verify_env["VERIFY_RUNS_TABLE"]).list_entities())  # fmt: skip
    assert len(runs) == 1 and runs[0]["RunId"] == "e2e1" and runs[0]["CountMissing"] == 1

    # the agent's next run re-uploads what was flagged (it still has every file)
    resync = run_cli("sync", "--source", str(src), "--state-dir", state_dir, "--json")
    assert resync.code == 0, resync.err
    for rel in rels[:4]:
        assert _sha(blob(rel).download_blob().readall()) == _sha(files[rel])

    # and the next verification finds everything in order except the orphan nobody can index
    host2 = DurableHost()
    state2 = host2.run("verify_orchestrator", {"run_id": "e2e2"})
    report2 = read_latest_report(blobs, verify_env["VERIFY_REPORTS_CONTAINER"])
    assert report2["run_id"] == "e2e2" and state2["output"]["problems"] == 1
    assert {p["blob_name"]: p["verdict"] for p in report2["problems"]} == {bad_name: "orphan"}
    assert report2["counts"]["ok"] == 11


def keys_dict(prefix: str, blob_name: str) -> dict[str, str]:
    pk, rk = keys_for_blob(prefix, blob_name)
    return {"PartitionKey": pk, "RowKey": rk}

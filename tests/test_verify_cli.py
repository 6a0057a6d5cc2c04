"""``azphotosync verify``: the local runner — exit codes, ``--json`` output, the stored report."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from sync_core.verify.reports import read_latest_report
from tests.conftest import det_bytes, run_cli, write_file


@pytest.fixture
def synced(azurite, storage_env, container, tmp_path, monkeypatch) -> dict:
    src = tmp_path / "lib"
    datas = {f"v/{i}.jpg": det_bytes(300 + i, 1500 + i) for i in range(5)}
    for rel, d in datas.items():
        write_file(src, rel, d)
    state = str(tmp_path / "state")
    assert run_cli("sync", "--source", str(src), "--state-dir", state).code == 0
    reports = f"r{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", reports)
    monkeypatch.setenv("VERIFY_RUNS_TABLE", f"runs{uuid.uuid4().hex[:12]}")
    return {"state": state, "datas": datas, "reports": reports, "src": src}


def test_clean_archive_exits_0_and_json_is_the_report_alone(azurite, synced):
    r = run_cli("verify", "--state-dir", synced["state"], "--deep-budget", "2GiB", "--json")
    assert r.code == 0, r.err
    doc = r.json()  # stdout holds the document and nothing else
    assert doc["schema"] == 1 and doc["rows"] == 5 and doc["counts"]["ok"] == 5 and doc["problems"] == []
    assert doc["deep_verified"] == 5 and doc["deep_budget"] == 2 * 1024**3
    assert doc["partitions"] == 16  # a library this size is verified in 16 units of 16 partitions
    stored = read_latest_report(BlobServiceClient.from_connection_string(azurite.connection_string), synced["reports"])
    assert stored == doc


def test_without_a_state_dir_or_report_the_256_partitions_are_the_units(synced, tmp_path):
    r = run_cli("verify", "--state-dir", str(tmp_path / "elsewhere"), "--prefix", "photos/x", "--json")
    assert r.code == 0, r.err
    assert r.json()["partitions"] == 256 and r.json()["rows"] == 0  # size unknown: the memory-safe choice


def test_damage_exits_1_and_is_listed(container, synced):
    rel, data = next(iter(synced["datas"].items()))
    sha = hashlib.sha256(data).hexdigest()
    name = f"photos/testhost/{sha[:2]}/{sha}/{rel}"
    container.delete_blob(name)
    r = run_cli("verify", "--state-dir", synced["state"])
    assert r.code == 1
    assert "missing" in r.out and name in r.out and "problems found" in r.out


@pytest.mark.parametrize("budget", ["lots", "-5", "2 parsecs"])
def test_bad_budget_is_a_usage_error(synced, budget):
    r = run_cli("verify", "--state-dir", synced["state"], "--deep-budget", budget)
    assert r.code == 2 and "--deep-budget" in r.err and r.out == ""


def test_missing_table_is_a_config_error(storage_env, container, synced, monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_STORAGE_TABLE", "nosuchtable1")
    r = run_cli("verify", "--state-dir", str(tmp_path / "other"))
    assert r.code == 2 and "nosuchtable1" in r.err


def test_a_unit_the_service_refuses_is_reported_and_the_others_are_verified(azurite, synced, monkeypatch):
    """One unit's listing is denied (403, not retried): the run still verifies every other unit, names the
    failed one in the report's errors and exits 1 — not an internal error that loses the whole run."""
    from agent.emulator import ACCOUNT_KEY

    from .faultproxy import FaultPlan, FaultProxy

    shas = [hashlib.sha256(d).hexdigest() for d in synced["datas"].values()]
    unit = shas[0][0]
    with FaultProxy(azurite.blob_port) as proxy:
        prefix = f"photos/testhost/{unit}"
        proxy.set_plan(FaultPlan(deny=1.0, only=lambda r: r.comp == "list" and r.query.get("prefix") == prefix))
        monkeypatch.setenv(
            "AZURE_STORAGE_CONNECTION_STRING",
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={proxy.blob_url};TableEndpoint={azurite.table_url};",
        )
        r = run_cli("verify", "--state-dir", synced["state"], "--json")
        assert proxy.fault_counts().get("deny", 0) >= 1
    assert r.code == 1, r.err
    doc = r.json()
    assert len(doc["errors"]) == 1 and doc["errors"][0].startswith(f"{prefix}: ")
    others = sum(1 for s in shas if s[0] != unit)
    assert doc["rows"] == others and doc["counts"]["ok"] == others and doc["problems"] == []


def test_a_table_endpoint_failing_mid_run_is_never_everything_verified(azurite, synced, monkeypatch):
    """The table endpoint refuses one unit's query and every write to the runs table (so the report falls
    back to the unstored path): the CLI must not say "everything verified" nor exit 0; the report counts the
    unit as not verified; ``status`` reads the stored report as needing attention."""
    from agent.emulator import ACCOUNT_KEY

    from .faultproxy import FaultPlan, FaultProxy

    shas = [hashlib.sha256(d).hexdigest() for d in synced["datas"].values()]
    unit = shas[0][0]
    runs_table = f"runs{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("VERIFY_RUNS_TABLE", runs_table)

    def refused(r) -> bool:
        flt = r.query.get("$filter", "")
        return runs_table in r.path or ("PartitionKey ge" in flt and f"{unit}0" in flt)

    with FaultProxy(azurite.table_port) as proxy:
        proxy.set_plan(FaultPlan(deny=1.0, only=refused))
        monkeypatch.setenv(
            "AZURE_STORAGE_CONNECTION_STRING",
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={azurite.blob_url};TableEndpoint=http://127.0.0.1:{proxy.port}/devstoreaccount1;",
        )
        r = run_cli("verify", "--state-dir", synced["state"])
        j = run_cli("verify", "--state-dir", synced["state"], "--json")
        assert proxy.fault_counts().get("deny", 0) >= 2
    assert r.code == 1, r.out + r.err
    assert "everything verified" not in r.out
    assert "not verified" in r.out and "report not stored" in r.err
    assert j.code == 1
    doc = j.json()
    assert len(doc["errors"]) == 1 and doc["partitions_failed"] == 1 and doc["partitions"] == 15
    # The stored copy of the report (blob) says the same; status reads it as needing attention.
    stored = read_latest_report(BlobServiceClient.from_connection_string(azurite.connection_string), synced["reports"])
    assert stored["partitions_failed"] == 1 and stored["errors"]
    s = run_cli("status", "--state-dir", synced["state"], "--json")
    assert s.code == 1
    assert any("not verified" in a for a in s.json()["attention"]), s.out

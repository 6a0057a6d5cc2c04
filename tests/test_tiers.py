"""Tiers against Azurite: Set Blob Tier is real; what Azurite does not do (refuse to read or copy an archived
blob) the fault proxy does, so every path that meets a cool or archived blob is exercised for real."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from agent.console import human_bytes
from sync_core.index.table_index import P_LAST_DEEP_VERIFIED, keys_for_blob
from sync_core.storage.tiering import PriceTable, read_cost
from sync_core.verify.partition import verify_partition
from sync_core.verify.reports import build_report
from sync_core.verify.summary import merge_summaries
from tests.conftest import det_bytes, run_cli, write_file
from tests.faultproxy import FaultProxy, Request, _canned
from tests.test_verify import _in_shard, _sha, _sync

PREFIX = "photos/testhost"
T0 = datetime(2026, 11, 1, 3, 0, 0, tzinfo=UTC)


class ArchiveProxy(FaultProxy):
    """Azurite behind the refusals of a real account: reads (and copies) of the blobs in ``archived`` answer
    409 BlobArchived, as the service does for a blob in the Archive tier. A Set Blob Tier on one of them
    starts a "rehydration" that never ends by itself: its properties say Archive and
    ``rehydrate-pending-to-hot`` until the test calls :meth:`finish_rehydration`."""

    def __init__(self, upstream_port: int):
        super().__init__(upstream_port)
        self.archived: set[str] = set()  # blob names, as in the request path after the container
        self.rehydrating: set[str] = set()
        self.tier_requests: list[tuple[str, str, str]] = []  # (blob, x-ms-access-tier, x-ms-rehydrate-priority)

    def finish_rehydration(self) -> None:
        self.archived.clear()
        self.rehydrating.clear()

    def _response_head(self, req: Request, head: bytes) -> bytes:
        if req.method != "HEAD" or self.blob_of(req) not in self.rehydrating:
            return head
        lines = [
            ln for ln in head.decode("latin-1").split("\r\n") if ln and not ln.lower().startswith("x-ms-access-tier")
        ]
        lines += ["x-ms-access-tier: Archive", "x-ms-archive-status: rehydrate-pending-to-hot"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def blob_of(self, req: Request) -> str:
        parts = req.path.split("/", 3)  # "", account, container, blob
        return parts[3] if len(parts) == 4 else ""

    def refused(self, req: Request) -> bool:
        if req.method == "GET" and not req.comp and self.blob_of(req) in self.archived:
            return True
        source = req.headers.get("x-ms-copy-source", "")
        return req.method == "PUT" and any(source.endswith("/" + name) for name in self.archived)

    def _choose(self, req: Request) -> str | None:
        name = self.blob_of(req)
        if req.method == "PUT" and req.comp == "tier" and name in self.archived:
            h = req.headers
            self.tier_requests.append((name, h.get("x-ms-access-tier", ""), h.get("x-ms-rehydrate-priority", "")))
            self.rehydrating.add(name)
        return "deny" if self.refused(req) else super()._choose(req)

    def _denial(self, req: Request) -> bytes:
        if self.refused(req):
            return _canned(409, "Conflict", "BlobArchived", "The operation is not permitted on an archived blob.", None)
        return super()._denial(req)


@pytest.fixture
def archive_proxy(azurite) -> Iterator[ArchiveProxy]:
    with ArchiveProxy(azurite.blob_port) as p:
        yield p


def proxied(azurite, proxy: FaultProxy) -> str:
    return azurite.connection_string.replace(azurite.blob_url, proxy.blob_url)


@pytest.fixture
def table(azurite, storage_env, container) -> TableClient:
    return TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        container.container_name
    )


def _library(
    tmp_path, container: ContainerClient, proxy: ArchiveProxy, files: dict[str, bytes], tiers: dict[str, str]
) -> dict[str, str]:
    """Back ``files`` up (state in ``tmp_path/state``), move some to other tiers, and let the proxy refuse
    reads of the archived ones; returns the blob name of each file."""
    src = tmp_path / "lib"
    for rel, data in files.items():
        write_file(src, rel, data)
    _sync(src, tmp_path)
    names = {rel: f"{PREFIX}/{_sha(d)[:2]}/{_sha(d)}/{rel}" for rel, d in files.items()}
    for rel, tier in tiers.items():
        container.get_blob_client(names[rel]).set_standard_blob_tier(tier)
        if tier == "Archive":
            proxy.archived.add(names[rel])
    return names


# -- verification -------------------------------------------------------------------------------------------
def test_deep_verification_never_reads_an_archived_blob_and_reports_it(
    azurite, container, table, archive_proxy, tmp_path
):
    src = tmp_path / "lib"
    seeds = {"hot.jpg": 11, "cool.jpg": 4000, "cold.jpg": 9000, "archived.jpg": 15000}
    datas = {}
    for rel, seed in seeds.items():
        datas[rel] = _in_shard("c3", seed, 3000 + seed % 7)
        seeds[rel] = seed
        write_file(src, rel, datas[rel])
    _sync(src, tmp_path)
    names = {rel: f"{PREFIX}/c3/{_sha(d)}/{rel}" for rel, d in datas.items()}
    for rel, tier in (("cool.jpg", "Cool"), ("cold.jpg", "Cold"), ("archived.jpg", "Archive")):
        container.get_blob_client(names[rel]).set_standard_blob_tier(tier)
    archive_proxy.archived.add(names["archived.jpg"])
    via = BlobServiceClient.from_connection_string(proxied(azurite, archive_proxy)).get_container_client(
        container.container_name
    )

    res = verify_partition(via, table, f"{PREFIX}/c3", now=T0, deep_budget=10**9)

    assert res.counts == {"ok": 4} and res.problems == []  # quick verification covers every tier
    assert res.deep_verified == 3 and res.deep_archived == 1
    assert not [r for r in archive_proxy.exchanges() if r.status == 409]  # the archived blob was never read
    sizes = {rel: len(d) for rel, d in datas.items()}
    assert res.candidate_bytes == sizes["hot.jpg"] + sizes["cool.jpg"] + sizes["cold.jpg"]
    assert res.deep_bytes_by_tier == {"Hot": sizes["hot.jpg"], "Cool": sizes["cool.jpg"], "Cold": sizes["cold.jpg"]}
    assert res.tier_bytes == {
        "Hot": sizes["hot.jpg"], "Cool": sizes["cool.jpg"], "Cold": sizes["cold.jpg"], "Archive": sizes["archived.jpg"]
    }  # fmt: skip
    pk, rk = keys_for_blob(PREFIX, names["archived.jpg"])
    assert P_LAST_DEEP_VERIFIED not in table.get_entity(pk, rk)  # its turn waits until it is online

    summary = merge_summaries([res.summary()])
    report = build_report(
        run_id="r", started_at="s", finished_at="f", container="c", table="t", summary=summary, problems=[]
    )
    prices = PriceTable.load()
    assert report["deep_archived"] == 1 and report["tier_bytes"] == {PREFIX: res.tier_bytes}
    assert report["deep_read_cost"]["amount"] == round(read_cost(res.deep_bytes_by_tier, prices), 4)
    assert report["deep_read_cost"]["currency"] == "USD"


# -- the agent never undoes tiering ------------------------------------------------------------------------
def _sync_via(monkeypatch, azurite, proxy: FaultProxy, src, state_dir) -> dict:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", proxied(azurite, proxy))
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state_dir), "--json")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    assert r.code == 0, r.err
    return r.json()


def _copies(proxy: FaultProxy, name: str) -> list[int | None]:
    return [
        ex.status
        for ex in proxy.exchanges()
        if ex.request.method == "PUT"
        and ex.request.path.endswith("/" + name)
        and "x-ms-copy-source" in ex.request.headers
    ]


def _uploads(proxy: FaultProxy, name: str) -> list[int]:
    return [
        ex.body_bytes
        for ex in proxy.exchanges()
        if ex.request.method == "PUT" and ex.request.path.endswith("/" + name) and ex.body_bytes
    ]


def test_duplicates_copy_from_a_cool_source_and_upload_when_the_source_is_archived(
    azurite, monkeypatch, container, archive_proxy, tmp_path
):
    src, state_dir = tmp_path / "lib", tmp_path / "state"
    data = det_bytes(21, 5000)
    sha = _sha(data)
    write_file(src, "a.jpg", data)
    _sync(src, tmp_path)
    first = f"{PREFIX}/{sha[:2]}/{sha}/a.jpg"
    container.get_blob_client(first).set_standard_blob_tier("Cool")

    write_file(src, "b.jpg", data)  # a duplicate: a server-side copy of the Cool blob
    _sync_via(monkeypatch, azurite, archive_proxy, src, state_dir)
    second = f"{PREFIX}/{sha[:2]}/{sha}/b.jpg"
    assert _copies(archive_proxy, second) == [202] and _uploads(archive_proxy, second) == []
    assert container.get_blob_client(second).download_blob().readall() == data

    for name in (first, second):  # both copies age into Archive
        container.get_blob_client(name).set_standard_blob_tier("Archive")
        archive_proxy.archived.add(name)
    write_file(src, "c.jpg", data)
    _sync_via(monkeypatch, azurite, archive_proxy, src, state_dir)
    third = f"{PREFIX}/{sha[:2]}/{sha}/c.jpg"
    assert _copies(archive_proxy, third) == [409]  # refused, as the service refuses an archived source
    assert _uploads(archive_proxy, third) == [len(data)]  # and uploaded from the local file instead
    on_third = [ex.request.method for ex in archive_proxy.exchanges() if ex.request.path.endswith("/" + third)]
    assert on_third == ["PUT", "PUT"]  # the refusal is not mistaken for "the name exists already" (no probe)
    assert container.get_blob_client(third).download_blob().readall() == data
    assert container.get_blob_client(first).get_blob_properties().blob_tier == "Archive"  # left where it was


def test_an_adoption_takes_cool_and_archived_blobs_as_they_are(
    azurite, monkeypatch, container, archive_proxy, tmp_path
):
    src = tmp_path / "lib"
    files = {"cool.jpg": det_bytes(31, 4000), "archived.jpg": det_bytes(32, 6000)}
    names = _library(tmp_path, container, archive_proxy, files, {"cool.jpg": "Cool", "archived.jpg": "Archive"})

    out = _sync_via(monkeypatch, azurite, archive_proxy, src, tmp_path / "fresh-state")  # a lost local index

    touched = [
        (ex.request.method, ex.request.query.get("comp", ""))
        for ex in archive_proxy.exchanges()
        if ex.request.path.endswith(tuple("/" + n for n in names.values()))
    ]
    assert touched and all(m == "HEAD" for m, _ in touched), touched  # properties only: no read, no write
    assert (out["uploaded"], out["already_present"], out["bytes_uploaded"]) == (0, 2, 0)
    props = {rel: container.get_blob_client(n).get_blob_properties() for rel, n in names.items()}
    assert props["cool.jpg"].blob_tier == "Cool" and props["archived.jpg"].blob_tier == "Archive"


def test_a_repair_never_rewrites_an_intact_tiered_blob(azurite, monkeypatch, container, table, archive_proxy, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "state"
    files = {"cool.jpg": det_bytes(41, 4000), "archived.jpg": det_bytes(42, 6000)}
    names = _library(tmp_path, container, archive_proxy, files, {"cool.jpg": "Cool", "archived.jpg": "Archive"})
    etags = {rel: container.get_blob_client(n).get_blob_properties().etag for rel, n in names.items()}
    # Stale flags, as a verifier run racing the tier change might leave them.
    for rel, verdict in (("cool.jpg", "missing"), ("archived.jpg", "etag_mismatch")):
        pk, rk = keys_for_blob(PREFIX, names[rel])
        table.update_entity({"PartitionKey": pk, "RowKey": rk, "VerifyStatus": verdict})

    out = _sync_via(monkeypatch, azurite, archive_proxy, src, state_dir)

    assert (out["repaired"], out["repair_lost"], out["bytes_uploaded"]) == (2, 0, 0)
    methods = [ex.request.method for ex in archive_proxy.exchanges() if ex.request.path.endswith(tuple(names.values()))]
    assert methods and set(methods) == {"HEAD"}, methods  # inspected, never read nor rewritten
    for rel, n in names.items():
        props = container.get_blob_client(n).get_blob_properties()
        assert props.etag == etags[rel] and props.blob_tier == {"cool.jpg": "Cool", "archived.jpg": "Archive"}[rel]


# -- restore ------------------------------------------------------------------------------------------------
def _restore_via(monkeypatch, azurite, proxy: FaultProxy, dest, *extra: str):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", proxied(azurite, proxy))
    try:
        return run_cli("restore", "--to", str(dest), "--state-dir", str(dest.parent / "no-state"), *extra)
    finally:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)


def test_a_restore_meeting_archived_blobs_restores_the_rest_and_finishes_once_they_are_online(
    azurite, monkeypatch, container, archive_proxy, tmp_path
):
    dest = tmp_path / "out"
    files = {"hot.jpg": det_bytes(51, 3000), "cool.jpg": det_bytes(52, 4000), "old/archived.jpg": det_bytes(53, 5000)}
    tiers = {"cool.jpg": "Cool", "old/archived.jpg": "Archive"}
    names = _library(tmp_path, container, archive_proxy, files, tiers)

    first = _restore_via(monkeypatch, azurite, archive_proxy, dest, "--rehydrate", "high")
    assert first.code == 1, first.err
    assert "1 file(s) pending rehydration" in first.out and "run the same restore again later" in first.out
    assert "old/archived.jpg: archived; rehydration requested (high priority), expected about 1 hour" in first.err
    assert (dest / "hot.jpg").read_bytes() == files["hot.jpg"] and (dest / "cool.jpg").read_bytes() == files["cool.jpg"]
    assert sorted(p.name for p in (dest / "old").iterdir()) == []  # no half-written file, no temp left behind
    assert archive_proxy.tier_requests == [(names["old/archived.jpg"], "Hot", "High")]

    second = _restore_via(monkeypatch, azurite, archive_proxy, dest, "--json")  # still rehydrating
    assert second.code == 1, second.err
    doc = second.json()
    assert (doc["present"], doc["pending"], doc["restored"]) == (2, 1, 0)
    [pending] = doc["problems"]
    assert pending["path"] == "old/archived.jpg" and pending["kind"] == "pending"
    assert "rehydration under way (rehydrate-pending-to-hot)" in pending["detail"]
    assert len(archive_proxy.tier_requests) == 1  # asked for once, not again

    archive_proxy.finish_rehydration()
    third = _restore_via(monkeypatch, azurite, archive_proxy, dest, "--json")
    assert third.code == 0, third.err
    doc = third.json()
    assert (doc["present"], doc["pending"], doc["restored"]) == (2, 0, 1)
    assert (dest / "old" / "archived.jpg").read_bytes() == files["old/archived.jpg"]
    assert sorted(p.name for p in (dest / "old").iterdir()) == ["archived.jpg"]


# -- status -------------------------------------------------------------------------------------------------
def test_status_shows_bytes_per_tier_and_the_monthly_estimate(azurite, monkeypatch, container, archive_proxy, tmp_path):
    state = tmp_path / "state"
    files = {"hot.jpg": det_bytes(61, 3000), "cool.jpg": det_bytes(62, 4000), "archived.jpg": det_bytes(63, 5000)}
    _library(tmp_path, container, archive_proxy, files, {"cool.jpg": "Cool", "archived.jpg": "Archive"})
    reports = f"r{container.container_name[1:]}"
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", reports)
    expected = {"Hot": 3000, "Cool": 4000, "Archive": 5000}
    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"as_of": "2030-01", "region": "testland", "redundancy": "LRS", "currency": "EUR",'
        ' "storage_per_gb_month": {"Hot": 2, "Cool": 1, "Cold": 0.5, "Archive": 0.25},'
        ' "read_per_gb": {"Hot": 0, "Cool": 1, "Cold": 2, "Archive": 3}}'
    )

    r = run_cli("status", "--state-dir", str(state), "--json", "--prices", str(prices))
    assert r.code == 0, r.err
    assert r.json()["tiers"]["estimate"] is None  # no verification yet, and no listing unless asked

    v = run_cli("verify", "--state-dir", str(state), "--deep-budget", "1GiB", "--json")
    assert v.code == 0, v.err
    r = run_cli("status", "--state-dir", str(state), "--json", "--prices", str(prices))
    assert r.code == 0, r.err
    doc = r.json()
    t = doc["tiers"]
    assert (t["source"], t["bytes_by_tier"]) == ("verification", expected)
    gib = 1024**3
    assert t["estimate"]["monthly_total"] == round((3000 * 2 + 4000 * 1 + 5000 * 0.25) / gib, 4)
    assert t["estimate"]["monthly_if_all_hot"] == round(12000 * 2 / gib, 4) and t["estimate"]["currency"] == "EUR"
    assert doc["verification"]["deep_archived"] == 1
    listed = run_cli("status", "--state-dir", str(state), "--json", "--prices", str(prices), "--tiers").json()
    assert listed["tiers"]["source"] == "listing" and listed["tiers"]["estimate"] == t["estimate"]

    monkeypatch.setenv("AZPHOTOSYNC_PRICES", str(prices))  # the environment names the same file
    text = run_cli("status", "--state-dir", str(state), "--tiers")
    assert text.code == 0, text.err
    line = next(ln for ln in text.out.splitlines() if ln.strip().startswith("tiers"))
    assert line.split("(")[0].split()[1:] == [w for t, n in expected.items() for w in (t, *human_bytes(n).split())]
    assert "from a listing now" in text.out and "EUR" in text.out and "testland" in text.out
    assert "1 blob(s) not deep-verifiable while archived" in text.out

"""Tiers against Azurite: Set Blob Tier is real; what Azurite does not do (refuse to read or copy an archived
blob) the fault proxy does, so every path that meets a cool or archived blob is exercised for real."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient

from sync_core.index.table_index import P_LAST_DEEP_VERIFIED, keys_for_blob
from sync_core.storage.tiering import PriceTable, read_cost
from sync_core.verify.partition import merge_summaries, verify_partition
from sync_core.verify.reports import build_report
from tests.conftest import det_bytes, run_cli, write_file
from tests.faultproxy import FaultProxy, Request, _canned

PREFIX = "photos/testhost"
T0 = datetime(2026, 11, 1, 3, 0, 0, tzinfo=UTC)


class ArchiveProxy(FaultProxy):
    """Azurite behind the refusals of a real account: reads (and copies) of the blobs in ``archived`` answer
    409 BlobArchived, as the service does for a blob in the Archive tier."""

    def __init__(self, upstream_port: int):
        super().__init__(upstream_port)
        self.archived: set[str] = set()  # blob names, as in the request path after the container

    def blob_of(self, req: Request) -> str:
        parts = req.path.split("/", 3)  # "", account, container, blob
        return parts[3] if len(parts) == 4 else ""

    def refused(self, req: Request) -> bool:
        if req.method == "GET" and not req.comp and self.blob_of(req) in self.archived:
            return True
        source = req.headers.get("x-ms-copy-source", "")
        return req.method == "PUT" and any(source.endswith("/" + name) for name in self.archived)

    def _choose(self, req: Request) -> str | None:
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
        storage_env["AZURE_STORAGE_TABLE"]
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _in_shard(shard: str, seed: int, size: int) -> bytes:
    while not _sha(data := det_bytes(seed, size)).startswith(shard):
        seed += 1
    return data


def _sync(src, tmp_path) -> None:
    r = run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / "state"))
    assert r.code == 0, r.err


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

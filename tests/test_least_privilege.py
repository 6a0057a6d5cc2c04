"""Least privilege, proven: every command runs with exactly the roles infra/ gives its identity.

The grants are derived from the Bicep (tests/rbac.py), turned into the built-in roles' permissions, and
enforced by a proxy in front of Azurite that refuses anything else with 403 AuthorizationPermissionMismatch,
as the storage service does. The agent identity runs sync, status, restore, verify, index rebuild and index
mirror; the Function App identity runs each verification activity. A refusal that a command expects (the
agent may read verification reports but not publish them) must come back as one clear line.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from agent.emulator import Azurite
from sync_core.verify.reports import build_report, iso, write_report

from .conftest import det_bytes, run_cli, write_file
from .rbac import Grant, archive_grants, permissions
from .rbacproxy import RbacProxy

BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
TABLE_READER = "76199698-9eea-4c19-bc75-cec21354c6b6"


@dataclass
class Archive:
    """The archive as infra/ deploys it: the four resources exist, named per the Bicep parameters."""

    names: dict[str, str]
    azurite: Azurite

    @property
    def blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.azurite.connection_string)

    @property
    def tables(self) -> TableServiceClient:
        return TableServiceClient.from_connection_string(self.azurite.connection_string)


@pytest.fixture
def archive(azurite: Azurite, storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Archive:
    suffix = uuid.uuid4().hex[:12]
    names = {
        "dataContainerName": storage_env["AZURE_STORAGE_CONTAINER"],
        "indexTableName": storage_env["AZURE_STORAGE_TABLE"],
        "reportsContainerName": f"reports{suffix}",
        "runsTableName": f"runs{suffix}",
        "thumbnailsContainerName": f"thumbs{suffix}",
    }
    a = Archive(names, azurite)
    a.blobs.create_container(names["dataContainerName"])
    a.blobs.create_container(names["reportsContainerName"])
    a.blobs.create_container(names["thumbnailsContainerName"])
    a.tables.create_table(names["indexTableName"])
    a.tables.create_table(names["runsTableName"])
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", names["reportsContainerName"])
    monkeypatch.setenv("VERIFY_RUNS_TABLE", names["runsTableName"])
    monkeypatch.setenv("AZURE_STORAGE_THUMBNAILS_CONTAINER", names["thumbnailsContainerName"])
    return a


@dataclass
class Identity:
    blob: RbacProxy
    table: RbacProxy

    @property
    def denied(self) -> list[str]:
        return self.blob.denied + self.table.denied

    def clear(self) -> None:
        self.blob.denied.clear()
        self.table.denied.clear()


@contextmanager
def acting_as(archive: Archive, grants: list[Grant], monkeypatch: pytest.MonkeyPatch) -> Iterator[Identity]:
    """Every client the code makes (it reads AZURE_STORAGE_CONNECTION_STRING) goes through the proxies."""
    granted = permissions(grants, archive.names)
    with ExitStack() as stack:
        blob = stack.enter_context(RbacProxy(archive.azurite.blob_port, "blob", granted))
        table = stack.enter_context(RbacProxy(archive.azurite.table_port, "table", granted))
        conn = (
            archive.azurite.connection_string.replace(archive.azurite.blob_url, f"http://127.0.0.1:{blob.port}/devstoreaccount1")
            .replace(archive.azurite.table_url, f"http://127.0.0.1:{table.port}/devstoreaccount1")
        )  # fmt: skip
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
        try:
            yield Identity(blob, table)
        finally:
            monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", archive.azurite.connection_string)


def library(root: Path) -> dict[str, bytes]:
    files = {"2024/a.jpg": det_bytes(1, 3000), "2024/b.mov": det_bytes(2, 5000), "2025/c.jpg": det_bytes(3, 700)}
    files["2025/copy-of-a.jpg"] = files["2024/a.jpg"]  # a server-side copy: reads the source blob
    for rel, data in files.items():
        write_file(root, rel, data)
    return files


def publish_clean_report(archive: Archive) -> None:
    """What the Function App leaves in the reports container after a clean run."""
    now = iso(datetime.now(UTC))
    report = build_report(
        run_id="cloud1", started_at=now, finished_at=now, container=archive.names["dataContainerName"],
        table=archive.names["indexTableName"], summary={"rows": 4, "partitions": 256, "counts": {"ok": 4}},
        problems=[],
    )  # fmt: skip
    write_report(archive.blobs, archive.names["reportsContainerName"], report)


def test_requests_map_to_the_documented_permissions() -> None:
    """A few rows of "Permissions for calling data operations", as the proxy reads them off the wire."""
    from .rbac import ACCOUNT, B, T, allowed, blob_needs, table_needs

    reader = {("container", "c"): frozenset({f"{B}/containers/read", f"{B}/containers/blobs/read"})}
    adder = {("container", "c"): frozenset({f"{B}/containers/blobs/add/action"})}
    assert allowed(reader, blob_needs("GET", "/acct/c/x.jpg", {}, {})) == []
    assert allowed(reader, blob_needs("GET", "/acct/c", {"restype": "container", "comp": "list"}, {})) == []
    assert allowed(reader, blob_needs("PUT", "/acct/c/x.jpg", {}, {"if-none-match": "*"}))  # refused
    assert allowed(adder, blob_needs("PUT", "/acct/c/x.jpg", {}, {"if-none-match": "*"})) == []  # create only
    assert allowed(adder, blob_needs("PUT", "/acct/c/x.jpg", {}, {}))  # a replace needs blobs/write
    copy = blob_needs("PUT", "/acct/c/y.jpg", {}, {"x-ms-copy-source": "http://h/acct/d/x.jpg"})
    assert [scope for scope, _ in copy] == [("container", "c"), ("container", "d")]
    e = f"{T}/tables/entities"
    merger = {("table", "tbl"): frozenset({f"{e}/update/action"})}
    assert allowed(merger, table_needs("PATCH", "/acct/tbl(PartitionKey='a',RowKey='b')", {"if-match": "*"})) == []
    assert allowed(merger, table_needs("PATCH", "/acct/tbl(PartitionKey='a',RowKey='b')", {}))  # upsert: add too
    batch = (b"--b\r\nContent-Type: application/http\r\n\r\nMERGE http://h/acct/tbl(PartitionKey='a',RowKey='b') "
             b"HTTP/1.1\r\nIf-Match: *\r\nAccept: application/json\r\n\r\n{}\r\n--b--\r\n")  # fmt: skip
    assert table_needs("POST", "/acct/$batch", {}, batch) == [
        (("table", "tbl"), ({f"{e}/write"}, {f"{e}/update/action"}))
    ]
    assert table_needs("GET", "/acct/Tables", {})[0][0] == ACCOUNT  # Query Tables: account scope only


def test_the_bicep_grants_each_identity_only_named_containers_and_tables() -> None:
    for principal in ("agentPrincipalId", "functionPrincipalId"):
        grants = archive_grants(principal)
        assert grants and all(g.kind in ("container", "table") for g in grants), grants


def test_every_agent_command_works_with_the_agent_roles(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, state = tmp_path / "lib", tmp_path / "state"
    files = library(src)
    publish_clean_report(archive)
    with acting_as(archive, archive_grants("agentPrincipalId"), monkeypatch) as agent:
        r = run_cli("--source", str(src), "--state-dir", str(state), "--json")
        assert r.code == 0, r.err
        assert (r.json()["uploaded"] + r.json()["copied"], r.json()["mirrored"]) == (4, 4)
        assert agent.denied == []
        thumbs = archive.blobs.get_container_client(archive.names["thumbnailsContainerName"])
        assert [b.name for b in thumbs.list_blobs()] == ["catalog/photos/testhost.json.gz"]  # the gallery's

        r = run_cli("status", "--state-dir", str(state), "--json")
        assert r.code == 0, r.json()["attention"]
        doc = r.json()
        assert doc["verification"]["run_id"] == "cloud1" and doc["flagged"] == {"count": 0, "rows": []}
        assert agent.denied == []

        r = run_cli("restore", "--state-dir", str(state), "--to", str(tmp_path / "restored"), "--json")
        assert r.code == 0, r.err
        assert {p.relative_to(tmp_path / "restored").as_posix(): p.read_bytes()
                for p in (tmp_path / "restored").rglob("*") if p.is_file()} == files  # fmt: skip
        assert agent.denied == []

        r = run_cli("index", "rebuild", "--state-dir", str(tmp_path / "rebuilt"), "--source", str(src), "--json")
        assert r.code == 0, r.err
        assert r.json()["from_table"] == 4
        r = run_cli("index", "mirror", "--state-dir", str(state), "--json")
        assert r.code == 0, r.err
        assert agent.denied == []

        # verify: the verdicts go into the index table (granted); the report may only be read, so it is
        # not stored, and one line says what to grant to store it.
        r = run_cli("verify", "--state-dir", str(state), "--json")
        assert r.code == 0, r.err
        assert r.json()["counts"]["ok"] == 4
        said = [ln for ln in r.err.splitlines() if "report not stored" in ln]
        assert len(said) == 1 and "Storage Blob Data Contributor" in said[0], r.err
        assert archive.names["reportsContainerName"] in said[0]
        assert agent.denied and all(archive.names["reportsContainerName"] in d for d in agent.denied), agent.denied


def test_status_names_each_refused_check_and_shows_the_rest(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the data container granted, status says which check was refused and what to grant, in one
    line each, and still shows what it could read."""
    src, state = tmp_path / "lib", tmp_path / "state"
    library(src)
    assert run_cli("--source", str(src), "--state-dir", str(state)).code == 0  # with every right (Azurite)
    only_data = [Grant(BLOB_CONTRIBUTOR, "container", "dataContainerName")]
    with acting_as(archive, only_data, monkeypatch):
        r = run_cli("status", "--state-dir", str(state), "--json")
    assert r.code == 1
    doc = r.json()
    assert doc["local"]["files"] == 4 and doc["cloud_error"] is None
    assert "cannot read verification reports" in doc["verification_error"]
    assert "Storage Blob Data Reader" in doc["verification_error"]
    assert archive.names["reportsContainerName"] in doc["verification_error"]
    assert "Storage Table Data" in doc["flagged_error"] and archive.names["indexTableName"] in doc["flagged_error"]
    assert all("\n" not in a for a in doc["attention"])


def test_sync_with_only_the_data_container_backs_up_and_says_so_once(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's Azure setup: Storage Blob Data Contributor on the container, nothing on the table."""
    src, state = tmp_path / "lib", tmp_path / "state"
    library(src)
    only_data = [Grant(BLOB_CONTRIBUTOR, "container", "dataContainerName")]
    with acting_as(archive, only_data, monkeypatch) as agent:
        r = run_cli("--source", str(src), "--state-dir", str(state))
        assert r.code == 0, r.err
        said = [ln for ln in (r.out + r.err).splitlines() if "index table" in ln]
        assert len(said) == 1 and "Storage Table Data Contributor" in said[0] and "index mirror" in said[0], said
        assert agent.denied and all(archive.names["indexTableName"] in d for d in agent.denied)
    assert len(list(archive.blobs.get_container_client(archive.names["dataContainerName"]).list_blobs())) == 4

    r = run_cli("--source", str(src), "--state-dir", str(state), "--json")  # every right again: catches up
    assert r.code == 0 and (r.json()["hashed"], r.json()["mirrored"], r.json()["mirror_pending"]) == (0, 4, 0)


def test_sync_with_a_read_only_table_backs_up_and_says_so_once(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table answers queries but refuses the mirror's writes: the backup is whole, the rows wait, exit 0."""
    src, state = tmp_path / "lib", tmp_path / "state"
    library(src)
    grants = [Grant(BLOB_CONTRIBUTOR, "container", "dataContainerName"), Grant(TABLE_READER, "table", "indexTableName")]
    with acting_as(archive, grants, monkeypatch) as agent:
        r = run_cli("--source", str(src), "--state-dir", str(state), "--json")
        assert r.code == 0, r.err
        assert (r.json()["uploaded"] + r.json()["copied"], r.json()["mirror_pending"]) == (4, 4)
        said = [ln for ln in r.err.splitlines() if "index table" in ln]
        assert len(said) == 1 and "Storage Table Data Contributor" in said[0], r.err
        assert agent.denied and all(archive.names["indexTableName"] in d for d in agent.denied)
    r = run_cli("index", "mirror", "--state-dir", str(state), "--json")  # every right again
    assert r.code == 0 and (r.json()["mirrored"], r.json()["pending"]) == (4, 0)


def test_every_function_activity_works_with_the_function_roles(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import function_app
    from sync_core.verify.partition import partitions_for

    src, state = tmp_path / "lib", tmp_path / "state"
    files = library(src)
    assert run_cli("--source", str(src), "--state-dir", str(state)).code == 0
    data = archive.blobs.get_container_client(archive.names["dataContainerName"])
    lost = next(b.name for b in data.list_blobs() if b.name.endswith("2025/c.jpg"))
    data.delete_blob(lost)  # the verdict 'missing' is written to its row
    sha = hashlib.sha256(b"orphan").hexdigest()
    data.upload_blob(f"photos/testhost/{sha[:2]}/{sha}/orphan.jpg", b"orphan",
                     metadata={"sha256": sha, "relpath": "orphan.jpg", "size": "6", "mtimens": "0",
                               "sourceid": "testhost", "azpsschema": "1"})  # fmt: skip
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", archive.names["dataContainerName"])
    monkeypatch.setenv("AZURE_STORAGE_TABLE", archive.names["indexTableName"])
    monkeypatch.setenv("VERIFY_DEEP_BUDGET", "1GiB")  # deep verification downloads every blob
    monkeypatch.setenv("VERIFY_PREFIXES", "photos/testhost")
    with acting_as(archive, archive_grants("functionPrincipalId"), monkeypatch) as fn:
        started = iso(datetime.now(UTC))
        plan = function_app.plan_verification({"run_id": "fn1"})
        assert plan["prefixes"] == ["photos/testhost"]
        # The partitions holding rows or blobs, and two empty ones (all 256 would only repeat the empty case).
        shards = {b.name.split("/")[2] for b in data.list_blobs()} | {lost.split("/")[2], "00", "ff"}
        summaries = [
            function_app.verify_partition(
                {
                    "run_id": "fn1",
                    "started_at": started,
                    "partition": p,
                    "deep_budget": plan["deep_budget"],
                    "deep_reference": None,
                    "partitions_total": 256,
                }
            )
            for p in partitions_for(plan["prefixes"])
            if p.rsplit("/", 1)[1] in shards
        ]
        from sync_core.verify.summary import merge_summaries

        summary = merge_summaries(summaries)
        assert summary["counts"]["missing"] == 1 and summary["counts"]["orphan_repaired"] == 1, summary
        out = function_app.publish_report({"run_id": "fn1", "started_at": started, "summary": summary})
        assert out["problems"] == 2
        assert fn.denied == []
    assert len(files) == 4
    reports = archive.blobs.get_container_client(archive.names["reportsContainerName"])
    assert {b.name for b in reports.list_blobs()} >= {"reports/latest.json"}
    assert not [b for b in reports.list_blobs() if b.name.startswith("staging/")]  # cleared by the activity


def test_every_thumbnail_activity_works_with_the_function_roles(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renditions run reads originals and the index, writes renditions and facts: all within the roles."""
    import io

    from PIL import Image

    import function_app
    from sync_core.verify.partition import partitions_for

    src, state = tmp_path / "lib", tmp_path / "state"
    library(src)  # undecodable bytes under media names: their failures are facts written to the rows
    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(photo, "JPEG")
    write_file(src, "2025/real.jpg", photo.getvalue())
    assert run_cli("--source", str(src), "--state-dir", str(state)).code == 0
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", archive.names["dataContainerName"])
    monkeypatch.setenv("AZURE_STORAGE_TABLE", archive.names["indexTableName"])
    monkeypatch.setenv("VERIFY_PREFIXES", "photos/testhost")
    data = archive.blobs.get_container_client(archive.names["dataContainerName"])
    shards = {b.name.split("/")[2] for b in data.list_blobs()}
    with acting_as(archive, archive_grants("functionPrincipalId"), monkeypatch) as fn:
        plan = function_app.plan_thumbnails({"run_id": "t1"})
        assert plan["prefixes"] == ["photos/testhost"]
        summaries = [
            function_app.thumbnail_partition({"run_id": "t1", "partition": p})
            for p in partitions_for(plan["prefixes"])
            if p.rsplit("/", 1)[1] in shards
        ]
        function_app.refresh_catalog({"run_id": "t1", "prefix": "photos/testhost"})
        assert fn.denied == []
    made = sum(s["counts"].get("made", 0) for s in summaries)
    assert made == 1, summaries
    thumbs = archive.blobs.get_container_client(archive.names["thumbnailsContainerName"])
    names = [b.name for b in thumbs.list_blobs()]
    assert {n.rsplit("/", 1)[1] for n in names if not n.startswith("catalog/")} == {"320.webp", "1600.webp"}
    assert "catalog/photos/testhost.json.gz" in names

"""The benchmark's in-memory emulator: it serves blobs and tables and writes nothing but its log."""

from __future__ import annotations

from pathlib import Path

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from agent.emulator import start_azurite


def test_in_memory_azurite_serves_and_keeps_nothing_on_disk(tmp_path: Path) -> None:
    az = start_azurite(tmp_path, in_memory=True)
    try:
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        blobs.create_container("mem").upload_blob("a/b.jpg", b"x" * 1000)
        assert blobs.get_container_client("mem").download_blob("a/b.jpg").readall() == b"x" * 1000
        table = TableServiceClient.from_connection_string(az.connection_string).create_table("memtable")
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
        assert table.get_entity("p", "r")["v"] == 1
    finally:
        az.stop()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["azurite.out"]

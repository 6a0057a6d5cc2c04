"""Micro-benchmarks against a private Azurite that explain the end-to-end numbers (docs/benchmarks.md).

    .venv/bin/python -m bench.micro          # all sections
    .venv/bin/python -m bench.micro agent    # sections 4 and 5: the agent's per-file costs

1. Put Block throughput with and without Content-MD5 (Azurite checksums a block without one by reading it
   back, so AzCopy and a plain SDK pool stage blocks at ~half the speed rclone does).
2. Client CPU per small Put Blob in the Python SDK (what a 1 KiB file costs us before Azurite's share).
3. Download throughput and CPU by azure-core's ``connection_data_block_size`` (4 KiB default).
4. Client CPU per small Put Blob the agent's way (``Transfer.upload``: metadata, content type, create-only),
   with requests' per-request environment lookups (proxy variables, ``~/.netrc``, CA bundle) and without.
5. Table writes: client and Azurite CPU per entity-group transaction and per entity, merge-upsert against
   insert without the entity echoed back, by batch size, sent by the SDK's ``submit_transaction`` and by
   ``sync_core.index.table_batch`` (what the Table mirror sends; its cost per file).
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import UpdateMode
from azure.storage.blob import BlobServiceClient

from agent.emulator import Azurite, start_azurite
from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta
from sync_core.index import table_batch
from sync_core.index.table_mirror import entity_for, open_table
from sync_core.local.state import BlobRow
from sync_core.storage.clients import blob_service, make_transport, table_service
from sync_core.sync.transfer import Transfer

MiB = 1 << 20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _server_cpu(az: Azurite) -> float:
    """Azurite's CPU seconds so far (it is the other half of every request's cost on a 2-core machine)."""
    with open(f"/proc/{az.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_puts(az: Azurite, n: int = 2000) -> None:
    """Section 4: 1 KiB puts through ``Transfer.upload`` on 8 threads, per-request env lookups on and off."""
    cfg = StorageConfig("micro-puts", "t", "p", "micro", connection_string=az.connection_string)
    small = os.urandom(1024)
    sha = hashlib.sha256(small).hexdigest()
    for trust_env in (True, False, True, False):
        transport = make_transport(20)
        transport.session.trust_env = trust_env  # type: ignore[attr-defined]
        container = blob_service(cfg, transport=transport).get_container_client(cfg.container)
        if not container.exists():
            container.create_container()
        t = Transfer(container)
        run = time.time_ns()
        meta = BlobMeta(sha, "a.jpg", len(small), 0, "micro")

        def put(i: int, t: Transfer = t, run: int = run, meta: BlobMeta = meta) -> None:
            t.upload(f"p/{run}/{i}.jpg", "", meta, "image/jpeg", small)

        t0, c0, s0 = time.perf_counter(), _cpu(), _server_cpu(az)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(n)))
        dt, cpu, srv = time.perf_counter() - t0, _cpu() - c0, _server_cpu(az) - s0
        print(f"Transfer.upload 1 KiB x{n}, 8 threads, trust_env={trust_env!s:5}: {n / dt:5.0f} puts/s, "
              f"client CPU {1000 * cpu / n:.2f} ms/put, Azurite {1000 * srv / n:.2f} ms/put", flush=True)  # fmt: skip


def table_writes(az: Azurite) -> None:
    """Section 5: merge-upsert against insert (``Prefer: return-no-content``) transactions by size."""
    cfg = StorageConfig("c", "microtable", "photos", "micro", connection_string=az.connection_string)
    table = open_table(table_service(cfg), cfg, create=True)
    counter = iter(range(10**9))

    def entities(n: int, shard: int) -> list[dict[str, object]]:
        out = []
        for _ in range(n):
            sha = f"{shard % 256:02x}" + hashlib.sha256(str(next(counter)).encode()).hexdigest()[2:]
            name = f"photos/{sha[:2]}/{sha}/d/IMG.jpg"
            row = BlobRow(name, "d/IMG.jpg", sha, 1024, 1, "0x8D", "micro", time.time(), True, None, None, None)
            out.append(entity_for(row))
        return out

    for n in (1, 8, 100):
        for via in ("sdk", "table_batch"):
            for mode in ("merge", "insert"):
                reps = max(4, 800 // n)
                batches = [entities(n, k) for k in range(reps)]
                t0, c0, s0 = time.perf_counter(), _cpu(), _server_cpu(az)
                for b in batches:
                    if via == "table_batch":
                        table_batch.submit(table, [("merge" if mode == "merge" else "create", e) for e in b])
                    elif mode == "merge":
                        table.submit_transaction([("upsert", e, {"mode": UpdateMode.MERGE}) for e in b])
                    else:
                        ops = [("create", e, {"response_preference": "return-no-content"}) for e in b]
                        table.submit_transaction(ops)
                dt, cpu, srv = time.perf_counter() - t0, _cpu() - c0, _server_cpu(az) - s0
                print(f"table transaction of {n:3} ({mode:6}, {via:11}): client {1000 * cpu / reps:5.1f} ms/tx "
                      f"{1000 * cpu / reps / n:5.2f} ms/entity, Azurite {1000 * srv / reps:5.1f} ms/tx "
                      f"{1000 * srv / reps / n:5.2f} ms/entity, {1000 * dt / reps:5.1f} ms wall/tx", flush=True)


def main() -> int:
    az = start_azurite(tempfile.mkdtemp(prefix="azps-micro-"))
    try:
        if sys.argv[1:] == ["agent"]:  # sections 4 and 5 only
            agent_puts(az)
            table_writes(az)
            return 0
        svc = BlobServiceClient.from_connection_string(az.connection_string)
        c = svc.get_container_client("micro")
        c.create_container()
        block = os.urandom(8 * MiB)
        for md5 in (False, True, False, True):
            b = c.get_blob_client(f"blocks-{md5}-{time.time_ns()}")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                ids = [f"{i:08d}" for i in range(24)]
                list(pool.map(lambda bid, b=b, md5=md5: b.stage_block(bid, block, validate_content=md5), ids))
            print(f"stage_block 8 MiB x24, 4 in flight, Content-MD5={md5!s:5}: "
                  f"{24 * 8 * MiB / 1e6 / (time.perf_counter() - t0):6.0f} MB/s", flush=True)  # fmt: skip
        small = os.urandom(1024)
        for _ in range(2):
            t0, c0 = time.perf_counter(), _cpu()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: c.upload_blob(f"s/{time.time_ns()}-{i}", small), range(2000)))
            dt, cpu = time.perf_counter() - t0, _cpu() - c0
            print(f"upload_blob 1 KiB x2000, 8 threads: {2000 / dt:5.0f} puts/s, client CPU {cpu / 2:.2f} ms/put")
        c.upload_blob("dl", os.urandom(64 * MiB))
        for bs in (4096, 256 * 1024, 4096, 256 * 1024):
            tr = RequestsTransport(session=requests.Session(), session_owner=True, connection_data_block_size=bs)
            cc = BlobServiceClient.from_connection_string(az.connection_string, transport=tr)
            t0, c0 = time.perf_counter(), _cpu()
            h = hashlib.sha256()
            for chunk in cc.get_container_client("micro").get_blob_client("dl").download_blob().chunks():
                h.update(chunk)
            dt, cpu = time.perf_counter() - t0, _cpu() - c0
            print(f"download 64 MiB, block size {bs:>6}: {64 * MiB / 1e6 / dt:4.0f} MB/s, CPU {cpu:.2f} s")
        agent_puts(az)
        table_writes(az)
    finally:
        az.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

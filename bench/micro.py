"""Micro-benchmarks against a private Azurite that explain the end-to-end numbers (docs/benchmarks.md).

    .venv/bin/python -m bench.micro

1. Put Block throughput with and without Content-MD5 (Azurite checksums a block without one by reading it
   back, so AzCopy and a plain SDK pool stage blocks at ~half the speed rclone does).
2. Client CPU per small Put Blob in the Python SDK (what a 1 KiB file costs us before Azurite's share).
3. Download throughput and CPU by azure-core's ``connection_data_block_size`` (4 KiB default).
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
from azure.storage.blob import BlobServiceClient

from agent.emulator import start_azurite

MiB = 1 << 20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    az = start_azurite(tempfile.mkdtemp(prefix="azps-micro-"))
    try:
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
    finally:
        az.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmarks against a private Azurite that explain the end-to-end numbers (docs/benchmarks.md).

    .venv/bin/python -m bench.micro          # all sections
    .venv/bin/python -m bench.micro agent    # sections 4 and 5: the agent's per-file costs
    .venv/bin/python -m bench.micro direct   # section 6: a Put Blob below azure-core, for comparison
    .venv/bin/python -m bench.micro transport   # section 7: the agent's put, requests' path against the direct one
    .venv/bin/python -m bench.micro receive     # section 8: client CPU of receiving a download, by how pieces are read
    .venv/bin/python -m bench.micro sign     # section 9: client CPU of signing one request with the account key

1. Put Block throughput with and without Content-MD5 (Azurite checksums a block without one by reading it
   back, so AzCopy and a plain SDK pool stage blocks at ~half the speed rclone does).
2. Client CPU per small Put Blob in the Python SDK (what a 1 KiB file costs us before Azurite's share).
3. Download throughput and CPU by azure-core's ``connection_data_block_size`` (4 KiB default).
4. Client CPU per small Put Blob the agent's way (``Transfer.upload``: metadata, content type, create-only),
   with requests' per-request environment lookups (proxy variables, ``~/.netrc``, CA bundle) and without
   (since 2026-12-07 "without" is the direct transport's path, ``sync_core.storage.direct_http``; with
   ``trust_env`` that transport hands every request to requests).
5. Table writes: client and Azurite CPU per entity-group transaction and per entity, merge-upsert against
   insert without the entity echoed back, by batch size, sent by the SDK's ``submit_transaction`` and by
   ``sync_core.index.table_batch`` (what the Table mirror sends; its cost per file).
6. The same create-only Put Blob written with ``http.client`` directly: what a transport below azure-core
   could save per small file (since 2026-12-07 ``Transfer.upload`` itself goes below requests, through the
   pipeline: the gap left is the pipeline's).
7. Client CPU per small Put Blob the agent's way on one thread, through ``make_transport``'s requests path (the
   keyword that asks for the direct path withheld: the transport before 2026-12-07) and its direct path
   (``sync_core.storage.direct_http``), in interleaved rounds in one process, so both see the same machine.
8. Client CPU of receiving a large blob through ``Downloads.open`` (restore's and deep verification's download),
   its pieces read as fresh bytes objects (``DirectResponse.iter_raw``: the way before 2026-12-08) and into one
   reused buffer (``iter_into``), each without and with a SHA-256 update per piece, alternated in one process.
   What a fresh piece costs depends on the allocator's state: run it also with ``MALLOC_MMAP_THRESHOLD_=131072``
   (glibc then serves every 1 MiB piece with fresh pages, as a process whose heap gets trimmed does).
9. Client CPU of signing one realistic Put Blob (the agent's headers: 12 ``x-ms-*`` of them, 6 metadata) with
   the account key: the SDK's ``SharedKeyCredentialPolicy`` against ours (``sync_core.storage.signing``), in
   interleaved rounds; no request is sent. Then, if not ``--no-puts``, the agent's 1 KiB put on one thread
   (section 7's direct path) with either policy, interleaved, against Azurite.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from email.utils import formatdate
from unittest import mock
from urllib.parse import quote, urlsplit

import requests
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.data.tables import UpdateMode
from azure.storage.blob import BlobServiceClient

from agent.emulator import ACCOUNT, ACCOUNT_KEY, Azurite, start_azurite
from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta, build_metadata
from sync_core.index import table_batch
from sync_core.index.table_mirror import entity_for, open_table
from sync_core.local.state import BlobRow
from sync_core.storage import download, sdk_internals
from sync_core.storage.clients import blob_service, make_transport, table_service
from sync_core.storage.download import Downloads
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


def direct_puts(az: Azurite, n: int = 5000) -> None:
    """Section 6: what a transport below azure-core would buy. The same create-only 1 KiB Put Blob (same
    headers and metadata), once through ``Transfer.upload`` and once written with ``http.client`` directly
    (one connection per thread, shared-key signature computed here, no retries): the client CPU per request
    a lean transport could reach, not a path the agent takes."""
    cfg = StorageConfig("micro-direct", "t", "p", "micro", connection_string=az.connection_string)
    container = blob_service(cfg, transport=make_transport(20)).get_container_client(cfg.container)
    container.create_container()
    t = Transfer(container)
    small = os.urandom(1024)
    meta = BlobMeta(hashlib.sha256(small).hexdigest(), "a.jpg", len(small), 0, "micro")
    headers_meta = {f"x-ms-meta-{k}": v for k, v in build_metadata(meta).items()}
    key = base64.b64decode(ACCOUNT_KEY)
    base = urlsplit(az.blob_url)
    local = threading.local()

    def direct(name: str) -> None:
        path = f"{base.path}/{cfg.container}/{quote(name, safe='~/')}"
        headers = {"x-ms-blob-type": "BlockBlob", "x-ms-date": formatdate(usegmt=True), "x-ms-version": "2025-01-05",
                   "If-None-Match": "*", "Content-Type": "application/octet-stream",
                   "x-ms-blob-content-type": "image/jpeg", **headers_meta}  # fmt: skip
        ms = sorted((k.lower(), v) for k, v in headers.items() if k.startswith("x-ms-"))
        canonical = "".join(f"{k}:{v}\n" for k, v in ms)
        to_sign = f"PUT\n\n\n{len(small)}\n\napplication/octet-stream\n\n\n\n*\n\n\n{canonical}/{ACCOUNT}{path}"
        signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers.update({"Authorization": f"SharedKey {ACCOUNT}:{signature}", "Content-Length": str(len(small))})
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(base.hostname or "", base.port, timeout=60)
        local.conn = conn
        conn.request("PUT", path, body=small, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"direct put: {response.status} {response.reason}")

    for rnd in range(2):
        for how in ("Transfer.upload", "http.client"):
            t0, c0 = time.perf_counter(), _cpu()
            with ThreadPoolExecutor(8) as pool:
                if how == "http.client":
                    list(pool.map(lambda i, r=rnd: direct(f"d{r}/{i}.jpg"), range(n)))
                else:
                    list(pool.map(lambda i, r=rnd: t.upload(f"a{r}/{i}.jpg", "", meta, "image/jpeg", small), range(n)))
            dt, cpu = time.perf_counter() - t0, _cpu() - c0
            print(f"1 KiB create-only put x{n}, 8 threads, {how:15}: {n / dt:5.0f} puts/s, "
                  f"client CPU {1000 * cpu / n:.3f} ms/put", flush=True)  # fmt: skip


def transport_puts(az: Azurite, rounds: int = 16, n: int = 500) -> None:
    """Section 7: 1 KiB puts through ``Transfer.upload`` on one thread, requests' path and the direct path of the
    same transport, ``rounds`` interleaved rounds of ``n``: the fastest and the median round of each."""
    cfg = StorageConfig("micro-transport", "t", "p", "micro", connection_string=az.connection_string)
    container = blob_service(cfg).get_container_client(cfg.container)
    container.create_container()
    direct = Transfer(container)
    plain = Transfer(blob_service(cfg).get_container_client(cfg.container))
    assert plain._put is not None and isinstance(plain._put._send, functools.partial)
    plain._put._send = plain._put._send.func  # send_request without the keyword: requests' path
    for how, xs in interleaved_puts({"requests": plain, "direct": direct}, rounds, n).items():
        print(f"1 KiB create-only put, 1 thread, {how:8} path: client CPU min {min(xs):.3f} ms/put, "
              f"median {statistics.median(xs):.3f} ({rounds} rounds of {n})", flush=True)  # fmt: skip


def interleaved_puts(transfers: dict[str, Transfer], rounds: int, n: int) -> dict[str, list[float]]:
    """Client CPU (ms per put) of ``n`` 1 KiB create-only puts on this thread through each transfer, in
    ``rounds`` interleaved rounds after a warm-up, so that every way sees the same machine."""
    small = os.urandom(1024)
    meta = BlobMeta(hashlib.sha256(small).hexdigest(), "a.jpg", len(small), 0, "micro")
    for i in range(300):  # warm: connections, caches
        for how, t in transfers.items():
            t.upload(f"w/{how}/{i}.jpg", "", meta, "image/jpeg", small)
    ms: dict[str, list[float]] = {how: [] for how in transfers}
    for rnd in range(rounds):
        for how, t in transfers.items():
            c0 = time.process_time()
            for i in range(n):
                t.upload(f"{how}/{rnd}/{i}.jpg", "", meta, "image/jpeg", small)
            ms[how].append(1000 * (time.process_time() - c0) / n)
    return ms


def receive(az: Azurite, size: int = 512 * MiB, rounds: int = 5) -> None:
    """Section 8: one ``size`` blob read through ``Downloads.open`` per sample, pieces as bytes (the direct path's
    ``iter_raw``, as before) or views of one buffer (``iter_into``), with and without hashing: ``rounds``
    rounds, the order of the two ways swapped every round; client CPU (``process_time``) per GB, medians."""
    cfg = StorageConfig("micro-receive", "t", "p", "micro", connection_string=az.connection_string)
    container = blob_service(cfg).get_container_client(cfg.container)
    container.create_container()
    blob = container.get_blob_client("big")
    block = os.urandom(64 * MiB)
    ids = [f"{i:08d}" for i in range(size // len(block))]
    for bid in ids:
        blob.stage_block(bid, block)
    blob.commit_block_list(ids)
    downloads = Downloads(container)
    assert downloads.direct
    never = type("Never", (), {})  # no response is one: Downloads takes iter_raw, the way before iter_into
    ways = {"bytes": lambda: mock.patch.object(download, "DirectResponse", never), "buffer": nullcontext}
    cpu: dict[tuple[str, bool], list[float]] = {(way, hashed): [] for way in ways for hashed in (False, True)}
    wall: dict[tuple[str, bool], list[float]] = {key: [] for key in cpu}
    for rnd in range(rounds + 1):  # round 0 warms up (page cache, connections) and is not counted
        for hashed in (False, True):
            for way in list(ways)[:: 1 if rnd % 2 else -1]:
                with ways[way]():
                    h, n = hashlib.sha256(), 0
                    t0, c0 = time.perf_counter(), time.process_time()
                    for piece in downloads.open("big"):
                        if hashed:
                            h.update(piece)
                        n += len(piece)
                    c1, t1 = time.process_time(), time.perf_counter()
                assert n == len(ids) * len(block)
                if rnd:
                    cpu[way, hashed].append((c1 - c0) / (n / 1e9))
                    wall[way, hashed].append(n / 1e6 / (t1 - t0))
    for (way, hashed), xs in cpu.items():
        print(f"receive {size // MiB} MiB via Downloads.open, pieces as {way:6}, sha256={hashed!s:5}: client CPU "
              f"median {statistics.median(xs):.3f} s/GB (min {min(xs):.3f}, max {max(xs):.3f}), "
              f"{statistics.median(wall[way, hashed]):4.0f} MB/s ({rounds} rounds)", flush=True)  # fmt: skip
def signing(rounds: int = 9, n: int = 20000) -> None:
    """Section 9: one Put Blob request signed ``n`` times per round by each policy, rounds interleaved."""
    sdk = BlobServiceClient.from_connection_string(f"AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY}").credential
    fast = sdk_internals.fast_signing(sdk)
    assert fast is not None, "this SDK failed the import check: the SDK's policy signs"
    meta = BlobMeta("ab" * 32, "2024/07/IMG_0001.JPG", 1024, 1720000000000000000, "host:1")
    headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": "1024", "If-None-Match": "*",
               "x-ms-version": "2025-11-05", "Content-Type": "application/octet-stream", "Accept": "application/xml",
               "x-ms-blob-content-type": "image/jpeg", **{f"x-ms-meta-{k}": v for k, v in build_metadata(meta).items()},
               "x-ms-date": formatdate(usegmt=True), "x-ms-client-request-id": "5f0c7a2e-1111-2222-3333-444455556666",
               "User-Agent": "azsdk-python-storage-blob/12 Python/3.11 (Linux)"}  # fmt: skip
    url = f"https://{ACCOUNT}.blob.core.windows.net/photos/2024/07/IMG_0001.JPG"
    request = PipelineRequest(HttpRequest("PUT", url, headers=headers), PipelineContext(None))
    us: dict[str, list[float]] = {"SDK": [], "ours": []}
    for _ in range(rounds):
        for how, policy in (("SDK", sdk), ("ours", fast)):
            c0 = time.process_time()
            for _ in range(n):
                policy.on_request(request)
            us[how].append(1e6 * (time.process_time() - c0) / n)
    for how, xs in us.items():
        ms_headers = sum(k.startswith("x-ms-") for k in headers)
        print(f"sign a Put Blob ({ms_headers} x-ms-* headers), {how:4} policy: client CPU median "
              f"{statistics.median(xs):.1f} us, min {min(xs):.1f} ({rounds} rounds of {n})", flush=True)  # fmt: skip


def signed_puts(az: Azurite, rounds: int = 16, n: int = 500) -> None:
    """Section 9, second half: 1 KiB puts through ``Transfer.upload`` (direct path) on one thread, signed by the
    SDK's policy and by ours, ``rounds`` interleaved rounds of ``n``."""
    cfg = StorageConfig("micro-sign", "t", "p", "micro", connection_string=az.connection_string)
    ours = blob_service(cfg).get_container_client(cfg.container)
    ours.create_container()
    sdk_internals.FAST_SIGNING = False
    try:
        theirs = blob_service(cfg).get_container_client(cfg.container)
    finally:
        sdk_internals.FAST_SIGNING = True
    assert type(ours.credential) is not type(theirs.credential)
    for how, xs in interleaved_puts({"SDK": Transfer(theirs), "ours": Transfer(ours)}, rounds, n).items():
        print(f"1 KiB create-only put, 1 thread, direct path, {how:4} signing: client CPU min {min(xs):.3f} ms/put, "
              f"median {statistics.median(xs):.3f} ({rounds} rounds of {n})", flush=True)  # fmt: skip


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
    if sys.argv[1:2] == ["sign"]:  # section 9 only
        signing()
        if "--no-puts" in sys.argv:
            return 0
    az = start_azurite(tempfile.mkdtemp(prefix="azps-micro-"))
    try:
        if sys.argv[1:] == ["agent"]:  # sections 4 and 5 only
            agent_puts(az)
            table_writes(az)
            return 0
        if sys.argv[1:] == ["direct"]:  # section 6 only
            direct_puts(az)
            return 0
        if sys.argv[1:] == ["transport"]:  # section 7 only
            transport_puts(az)
            return 0
        if sys.argv[1:] == ["receive"]:  # section 8 only
            receive(az)
            return 0
        if sys.argv[1:2] == ["sign"]:
            signed_puts(az)
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
        direct_puts(az)
        transport_puts(az)
        receive(az)
    finally:
        az.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

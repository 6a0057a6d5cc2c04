"""The baseline: a plain azure-storage-blob uploader with a thread pool, as a user would write it."""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

from azure.storage.blob import ContainerClient


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--container", required=True)
    p.add_argument("--workers", type=int, default=8)
    a = p.parse_args()
    container = ContainerClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"], a.container)
    paths = [os.path.join(d, n) for d, _dirs, names in os.walk(a.src) for n in names]

    def put(path: str) -> int:
        name = os.path.relpath(path, a.src).replace(os.sep, "/")
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            container.upload_blob(name, f, length=size, overwrite=True, max_concurrency=4 if size > 64 << 20 else 1)
        return size

    with ThreadPoolExecutor(a.workers) as pool:
        total = sum(pool.map(put, paths))
    print(f"uploaded {len(paths)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

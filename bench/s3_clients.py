"""Which S3 client the object store (storage/objects.py) uses, chosen by measurement (issue 23).

Two well-kept asyncio clients, obstore (Rust's object_store behind a thin Python layer) and
aiobotocore (botocore on aiohttp), each put and then get `--count` objects of 2 MB (the benchmark's
result PNG size) one at a time, against the local S3 server the tests use (moto's server mode, in a
process of its own: tests/support/s3.py). This process's CPU (user + system) is read around each
phase, so the server's own work is not counted; the wall time per operation is mostly the server's
(moto is Python) and is given for comparison between the two clients only, not as a figure of S3.
A presign is measured too (`HIDREAM_MEDIA_REDIRECT`: one per media link).

    python -m bench.s3_clients [--count 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from tests.support.s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Server,
    create_bucket,
    start_server,
    stop_server,
)

SIZE = 2_261_209


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(op: Callable[[int], Awaitable[None]], count: int) -> tuple[float, float]:
    """(p50 wall ms, CPU ms) per operation."""
    walls = []
    cpu = _cpu()
    for i in range(count):
        start = time.perf_counter()
        await op(i)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls) * 1000, (_cpu() - cpu) / count * 1000


async def _obstore(server: S3Server, bucket: str, data: bytes, count: int) -> dict[str, tuple[float, float]]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        prefix="bench",
        endpoint=server.endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region=REGION,
        client_options={"allow_http": True},
    )

    async def put(i: int) -> None:
        await obstore.put_async(store, f"o{i}", data)

    async def get(i: int) -> None:
        got = await obstore.get_async(store, f"o{i}")
        size = 0
        async for chunk in got.stream():
            size += len(chunk)
        assert size == SIZE

    async def sign(i: int) -> None:
        await obstore.sign_async(store, "GET", f"o{i}", timedelta(minutes=10))

    return {
        "put": await _measure(put, count),
        "get": await _measure(get, count),
        "presign": await _measure(sign, count),
    }


async def _aiobotocore(
    server: S3Server, bucket: str, data: bytes, count: int
) -> dict[str, tuple[float, float]]:
    from aiobotocore.session import get_session  # type: ignore[import-untyped]

    session = get_session()
    client: Any
    async with session.create_client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    ) as client:

        async def put(i: int) -> None:
            await client.put_object(Bucket=bucket, Key=f"bench/a{i}", Body=data)

        async def get(i: int) -> None:
            got = await client.get_object(Bucket=bucket, Key=f"bench/a{i}")
            size = 0
            async with got["Body"] as body:
                async for chunk in body.iter_chunks():
                    size += len(chunk)
            assert size == SIZE

        async def sign(i: int) -> None:
            await client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": f"bench/a{i}"}, ExpiresIn=600
            )

        return {
            "put": await _measure(put, count),
            "get": await _measure(get, count),
            "presign": await _measure(sign, count),
        }


async def _run(count: int) -> None:
    server = start_server()
    try:
        bucket = create_bucket(server)
        data = os.urandom(SIZE)
        results = {
            # A warm-up of each first (imports, connection pools), then the measured rounds.
            name: (await bench(server, bucket, data, 3), await bench(server, bucket, data, count))[1]
            for name, bench in (("obstore", _obstore), ("aiobotocore", _aiobotocore))
        }
    finally:
        stop_server(server)
    print(f"S3 clients, {count} objects of {SIZE / 1e6:.2f} MB, one at a time, local S3 server (moto):")
    print(f"{'client':<12} {'op':<8} {'p50 wall ms':>12} {'client CPU ms/op':>17}")
    for name, ops in results.items():
        for op, (wall, cpu) in ops.items():
            print(f"{name:<12} {op:<8} {wall:>12.2f} {cpu:>17.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(_run(args.count))


if __name__ == "__main__":
    main()

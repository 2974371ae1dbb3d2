"""The providers' HTTP client alone: CPU per request, httpx's own transport against bot.providers.transport.

    python -m bench.http [--json N] [--downloads N] [--rounds R]

A loopback aiohttp server runs in its own process (so its CPU is not the client's) and answers a
small JSON POST (what a provider's submit or status read is) and a 2.26 MB GET (a result image, read
in pieces as bot.jobs.media.fetch_image does). This process sends them one after another with each client
and reads its own CPU time (user + system) around them. Each figure is the best of R rounds (the
least disturbed by whatever else runs on the machine). Nothing here is an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httpx
from aiohttp import web

from bot.providers import transport as http_transport
from bot.providers.transport import TIMEOUT, provider_client

IMAGE_BYTES = 2_260_000
CHUNK = 256 * 1024  # the alternative to iter_any() measured
PAYLOAD = {"prompt": "a red fox in snow, golden hour, 35 mm", "seed": 7, "num_images": 1, "format": "png"}
Work = Callable[[], Awaitable[None]]


def serve() -> None:
    """The server process: prints its port, then answers until it is ended."""
    image = os.urandom(IMAGE_BYTES)

    async def submit(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"request_id": "pixazo_0123456789abcdef", "status": "QUEUED"})

    async def result(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/submit", submit)
        app.router.add_get("/result.png", result)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def httpx_default() -> httpx.AsyncClient:
    """The provider client as bot/app.py built it before bot.providers.transport."""
    return httpx.AsyncClient(
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": "hidream-bot/0.1"},
    )


async def _iter_chunked(self: http_transport._Body) -> AsyncIterator[bytes]:
    async for chunk in self._response.content.iter_chunked(CHUNK):
        yield chunk


async def best(work: Work, count: int, rounds: int) -> float:
    """Client CPU seconds per call, best of `rounds`."""
    for _ in range(max(count // 10, 5)):  # warm: connections open, code paths hot
        await work()
    figures = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            await work()
        figures.append((time.process_time() - start) / count)
    return min(figures)


async def with_httpx(
    base: str, client: httpx.AsyncClient, counts: tuple[int, int], rounds: int
) -> tuple[float, float]:
    async def post() -> None:
        response = await client.post(f"{base}/submit", json=PAYLOAD, headers={"Authorization": "Key k"})
        assert response.json()["status"] == "QUEUED"

    async def download() -> None:  # as bot.jobs.media.fetch_image reads a provider's result
        response = await client.send(client.build_request("GET", f"{base}/result.png"), stream=True)
        try:
            buf = bytearray()
            async for chunk in response.aiter_bytes():
                buf.extend(chunk)
        finally:
            await response.aclose()
        assert len(buf) == IMAGE_BYTES

    return await best(post, counts[0], rounds), await best(download, counts[1], rounds)


async def with_aiohttp(
    base: str, session: aiohttp.ClientSession, counts: tuple[int, int], rounds: int
) -> tuple[float, float]:
    """The same requests with aiohttp's own API: the floor for any client built on it."""

    async def post() -> None:
        async with session.post(f"{base}/submit", json=PAYLOAD, headers={"Authorization": "Key k"}) as r:
            assert (await r.json())["status"] == "QUEUED"

    async def download() -> None:
        async with session.get(f"{base}/result.png") as r:
            buf = bytearray()
            async for chunk in r.content.iter_chunked(1 << 20):
                buf.extend(chunk)
        assert len(buf) == IMAGE_BYTES

    return await best(post, counts[0], rounds), await best(download, counts[1], rounds)


def show(name: str, figures: tuple[float, float]) -> None:
    print(f"{name:<52} {figures[0] * 1e6:>17.0f} {figures[1] * 1e3:>19.2f}", flush=True)


async def run(base: str, counts: tuple[int, int], rounds: int) -> None:
    print(f"{'client':<52} {'JSON POST µs CPU':>17} {'2.26 MB GET ms CPU':>19}")
    async with httpx_default() as client:
        show("httpx, its own transport (before)", await with_httpx(base, client, counts, rounds))
    async with provider_client() as client:
        show("AiohttpTransport, iter_any() (after)", await with_httpx(base, client, counts, rounds))
    original = http_transport._Body.__aiter__
    http_transport._Body.__aiter__ = _iter_chunked  # type: ignore[method-assign]
    try:
        async with provider_client() as client:
            name = f"AiohttpTransport, iter_chunked({CHUNK // 1024} KiB)"
            show(name, await with_httpx(base, client, counts, rounds))
    finally:
        http_transport._Body.__aiter__ = original  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as session:
        show("aiohttp alone (for scale)", await with_aiohttp(base, session, counts, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=int, default=2000, help="JSON POSTs per round")
    parser.add_argument("--downloads", type=int, default=200, help="2.26 MB downloads per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.http", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        asyncio.run(run(base, (args.json, args.downloads), args.rounds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

"""The providers' HTTP client alone: CPU per request for each candidate transport, interleaved.

    python -m bench.http [--json N] [--downloads N] [--rounds R]

A loopback aiohttp server runs in its own process (so its CPU is not the client's) and answers a
small JSON POST (what a provider's submit or status read is) and a 2.26 MB GET (a result image, read
in pieces and capped, as bot.jobs.media.fetch_image does). This process sends them one after another
with each candidate and reads its own CPU time (user + system) around them. The candidates take turns
within each round (A B C, then B C A, ...), so a neighbour's load on the shared machine falls on all of
them alike; each figure is the median of R rounds, with the lowest and highest beside it.

The candidates (issue 18, item 6):
- `aiohttp-under-httpx`: httpx's client over the AiohttpTransport the bot had before the seam (read
  from git at commit c1eac84, bot/providers/transport.py; left out when git cannot show it);
- `httpx`: httpx's client over its own transport (httpcore);
- `do_request`: the prototype of the seam (`DoRequest` here, the shape of python-telegram-bot's
  BaseRequest.do_request), the least such a seam could cost;
- `seam`: the bot's own seam (bot.transport.Transport over bot.providers.aiohttp_transport), used as
  providers use it (a JSON body encoded as `HttpProvider.send` does) and as fetch_image downloads.
Nothing here is an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from bot.providers.aiohttp_transport import provider_client
from bot.providers.base import encode_json
from bot.transport import Transport

IMAGE_BYTES = 2_260_000
MAX_BYTES = 20 * 1024 * 1024
PAYLOAD = {"prompt": "a red fox in snow, golden hour, 35 mm", "seed": 7, "num_images": 1, "format": "png"}
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
HEADERS = {"User-Agent": "hidream-bot/0.1"}
# The bot before the seam: httpx posing over aiohttp.
BEFORE = "c1eac84"
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


# --- the candidates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytearray  # as the httpx downloads here keep theirs: no copy at the end


class DoRequest:
    """The seam of our own, as a prototype: one method, whole answers, the body capped as it arrives.

    What the bot would need beside it (error mapping once in a base class, redirects for fetch_image,
    timeouts per call) is left out; so this is the least such a seam could cost."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            headers=HEADERS,
            read_bufsize=256 * 1024,
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=30),
        )

    async def do_request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, max_bytes: int
    ) -> Answer:
        async with self.session.request(method, url, headers=headers, data=body) as response:
            got = bytearray()
            async for chunk in response.content.iter_any():
                got += chunk
                if len(got) > max_bytes:
                    raise ValueError("too large")
            return Answer(response.status, response.headers, got)

    async def aclose(self) -> None:
        await self.session.close()


def httpx_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or httpx.AsyncHTTPTransport(limits=LIMITS), timeout=TIMEOUT, headers=HEADERS
    )


def httpx_work(base: str, client: httpx.AsyncClient) -> tuple[Work, Work]:
    async def post() -> None:
        response = await client.post(f"{base}/submit", json=PAYLOAD, headers={"Authorization": "Key k"})
        assert response.json()["status"] == "QUEUED"

    async def download() -> None:  # as bot.jobs.media._download reads a provider's result
        response = await client.send(client.build_request("GET", f"{base}/result.png"), stream=True)
        try:
            buf = bytearray()
            async for chunk in response.aiter_bytes():
                buf.extend(chunk)
                if len(buf) > MAX_BYTES:
                    raise ValueError("too large")
        finally:
            await response.aclose()
        assert len(buf) == IMAGE_BYTES

    return post, download


def real_seam_work(base: str, seam: Transport) -> tuple[Work, Work]:
    async def post() -> None:
        headers = {"Authorization": "Key k", "Content-Type": "application/json"}
        answer = await seam.do_request("POST", f"{base}/submit", headers=headers, body=encode_json(PAYLOAD))
        assert answer.status == 200 and answer.json()["status"] == "QUEUED"

    async def download() -> None:
        async with seam.stream(f"{base}/result.png", max_bytes=MAX_BYTES, follow_redirects=True) as answer:
            body = await answer.read()
        assert answer.status == 200 and len(body) == IMAGE_BYTES

    return post, download


def before_the_seam() -> Any:
    """The AiohttpTransport class of commit c1eac84 (httpx posing over aiohttp), or None."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE}:bot/providers/transport.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("before_the_seam")
    exec(compile(source, "before_the_seam.py", "exec"), module.__dict__)
    return module.AiohttpTransport


def seam_work(base: str, seam: DoRequest) -> tuple[Work, Work]:
    async def post() -> None:
        body = json.dumps(PAYLOAD).encode()
        headers = {"Authorization": "Key k", "Content-Type": "application/json"}
        answer = await seam.do_request(
            "POST", f"{base}/submit", headers=headers, body=body, max_bytes=MAX_BYTES
        )
        assert json.loads(answer.body)["status"] == "QUEUED"

    async def download() -> None:
        answer = await seam.do_request(
            "GET", f"{base}/result.png", headers={}, body=None, max_bytes=MAX_BYTES
        )
        assert answer.status == 200 and len(answer.body) == IMAGE_BYTES

    return post, download


# --- the run -------------------------------------------------------------------------------------


async def per_call(work: Work, count: int) -> float:
    """Client CPU seconds per call over `count` calls."""
    start = time.process_time()
    for _ in range(count):
        await work()
    return (time.process_time() - start) / count


async def run(base: str, counts: tuple[int, int], rounds: int) -> dict[str, dict[str, list[float]]]:
    aiohttp_transport = before_the_seam()
    clients: dict[str, Any] = {
        "httpx": httpx_client(None),
        "do_request": DoRequest(),
        "seam": provider_client(),
    }
    if aiohttp_transport is not None:  # the bot before the seam
        clients["aiohttp-under-httpx"] = httpx_client(aiohttp_transport(limits=LIMITS))

    def work(c: Any) -> tuple[Work, Work]:
        if isinstance(c, DoRequest):
            return seam_work(base, c)
        if isinstance(c, Transport):
            return real_seam_work(base, c)
        return httpx_work(base, c)

    works = {name: work(c) for name, c in clients.items()}
    figures: dict[str, dict[str, list[float]]] = {name: {"json": [], "download": []} for name in works}
    try:
        for post, download in works.values():  # warm: connections open, code paths hot
            for _ in range(50):
                await post()
            for _ in range(10):
                await download()
        names = list(works)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                post, download = works[name]
                figures[name]["json"].append(await per_call(post, counts[0]))
                figures[name]["download"].append(await per_call(download, counts[1]))
            print(f"# round {r + 1} of {rounds}: {' '.join(order)}", file=sys.stderr, flush=True)
    finally:
        for c in clients.values():
            await c.aclose()
    return figures


def spread(values: list[float], scale: float, digits: int) -> str:
    return (
        f"{statistics.median(values) * scale:.{digits}f} "
        f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"
    )


def show(figures: dict[str, dict[str, list[float]]], rounds: int) -> None:
    print(f"\nmedian (lowest-highest) of {rounds} interleaved rounds, client CPU per call\n")
    print("| candidate | JSON POST, µs | 2.26 MB GET, ms |\n|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {spread(f['json'], 1e6, 0)} | {spread(f['download'], 1e3, 2)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=int, default=500, help="JSON POSTs per candidate and round")
    parser.add_argument("--downloads", type=int, default=50, help="2.26 MB downloads per candidate and round")
    parser.add_argument("--rounds", type=int, default=9)
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
        show(asyncio.run(run(base, (args.json, args.downloads), args.rounds)), args.rounds)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

"""The provider of `make bench`, run as a process of its own (`python -m tests.fakes.bench_provider`).

A Pixazo-like fake (the Pixazo fake's API) that answers every result file with one fixed PNG of
1024x1024 random noise (about 2 MB, made once at start from a fixed seed) and finishes each job as
soon as it is accepted: the callback goes out at once in webhook mode, and the first status read
says COMPLETED in polling mode. `POST /_bench/hold` keeps every job at work until
`POST /_bench/release` (the "1,000 jobs in flight" case).

It notes, per job, the moment it told the bot the job was done (the callback sent, or the first
COMPLETED status answered), on the system-wide monotonic clock so that the benchmark can compare it
with the moment the chat fake received the upload. Jobs are matched by a tag in their prompt.
`GET /_bench/done` returns those moments; `GET /_bench/count` how many jobs were accepted.
It prints its base URL on the first line of standard output, then serves until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import re
import signal
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.loopback import serve
from tests.fakes.netem import slowed
from tests.fakes.pixazo import PixazoFake

API_KEY = "bench-pixazo-key"
TAG = re.compile(r"r\d+j\d+")
SIDE = 1024


def noise_png(seed: int = 13, side: int = SIDE) -> bytes:
    """A PNG of random noise that does not compress: 5 random bits per channel gives about 2.2 MB at
    1024x1024 (about 20 MB at 3100x3100)."""
    raw = bytes(b & 0x1F for b in random.Random(seed).randbytes(side * side * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), raw).save(out, "PNG")
    return out.getvalue()


class BenchProvider(PixazoFake):
    def __init__(self, png: bytes) -> None:
        super().__init__(api_key=API_KEY)
        self.png = png
        self.polls_before_done = 0  # the first status read already says COMPLETED
        self.done_at: dict[str, float] = {}
        self.app.router.add_post("/_bench/hold", self._hold)
        self.app.router.add_post("/_bench/release", self._release)
        self.app.router.add_post("/_bench/reset", self._reset)
        self.app.router.add_get("/_bench/done", self._done)
        self.app.router.add_get("/_bench/count", self._count)

    def _tag(self, request_id: str) -> str | None:
        job = self.jobs.get(request_id)
        found = TAG.search(str(job.body.get("prompt", ""))) if job is not None else None
        return found.group(0) if found else None

    def _note_done(self, request_id: str) -> None:
        tag = self._tag(request_id)
        if tag is not None:
            self.done_at.setdefault(tag, time.monotonic())

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["job"] not in self.jobs:
            return web.Response(status=404)
        return web.Response(body=self.png, content_type="image/png")

    async def _status(self, request: web.Request) -> web.Response:
        response = await super()._status(request)
        job = self.jobs.get(request.match_info["request_id"])
        if job is not None and self.progress(job) == "completed":
            self._note_done(job.id)
        return response

    def post_callback(
        self, url: str, payload: Any, headers: Mapping[str, str] | None = None, *, body: bytes | None = None
    ) -> None:
        raw = json.dumps(payload).encode() if body is None else body
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.hold_callbacks:
            self.held.append((url, raw, hdrs))
            return
        request_id = str(json.loads(raw).get("request_id", ""))

        async def deliver() -> None:
            self._note_done(request_id)
            async with self.session.post(url, data=raw, headers=hdrs) as response:
                self.callbacks_sent.append((url, response.status))

        task = asyncio.get_running_loop().create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold(self, request: web.Request) -> web.Response:
        self.hold()
        return web.json_response({"ok": True})

    async def _release(self, request: web.Request) -> web.Response:
        self.release_callbacks()
        return web.json_response({"ok": True})

    async def _reset(self, request: web.Request) -> web.Response:
        """Forget every job (between runs), and stop holding."""
        self.hold_callbacks = self.holding = False
        self.held.clear()
        self.jobs.clear()
        self.submits.clear()
        self.status_calls.clear()
        self.callbacks_sent.clear()
        self.done_at.clear()
        return web.json_response({"ok": True})

    async def _done(self, request: web.Request) -> web.Response:
        return web.json_response(self.done_at)

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response({"accepted": len(self.jobs)})


async def main(side: int, network: bool) -> None:
    fake = BenchProvider(noise_png(side=side))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(fake.app) as direct, AsyncExitStack() as stack:
        # The network profile: the bot reaches the provider (its API and its result files) through a
        # proxy at a real network's pace (tests/fakes/netem.py).
        url = await stack.enter_async_context(slowed(direct)) if network else direct
        fake.url = url
        print(url, len(fake.png), flush=True)
        await stop.wait()
        await fake.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the provider of make bench")
    parser.add_argument("--side", type=int, default=SIDE, help="the result PNG's width and height")
    parser.add_argument("--network", action="store_true", help="behind the network profile's proxy")
    args = parser.parse_args()
    asyncio.run(main(args.side, args.network))

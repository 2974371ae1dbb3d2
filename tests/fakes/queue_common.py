"""Pieces shared by the loopback fakes of queue-style providers (Pixazo, Atlas Cloud).

A fake is an aiohttp app on 127.0.0.1, port 0. It records every request it was sent, can be told to
fail the next submits ("script": an HTTP status, "drop" to close the connection after reading the
request, or "lost" to make the job, post its callback, and then close the connection unanswered),
serves real images made with Pillow, and posts callbacks to the URL a job was given (or holds them
until the test releases them).
Also here: `Receiver`, the stand-in for the bot's own server in contract tests (records callbacks,
serves reference images like the bot's `/media/` links).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image, ImageDraw

from bot.providers.base import Provider, ProviderStatus
from bot.transport import Transport
from tests.fakes.loopback import serve

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def make_image(
    width: int, height: int, fmt: str = "png", color: tuple[int, int, int] = (200, 60, 40)
) -> bytes:
    """A small but real image of the given size and format."""
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(30, 90, 200))
    out = io.BytesIO()
    image.save(out, PIL_FORMATS[fmt])
    return out.getvalue()


def image_info(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of image bytes, e.g. ("PNG", 1024, 768)."""
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format), image.width, image.height


@dataclass
class Received:
    """One HTTP request as a fake or the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


async def record(request: web.Request) -> Received:
    body = await request.read()
    return Received(request.method, request.path, dict(request.headers), body, request.query_string)


def drop_connection(request: web.Request) -> web.Response:
    """Close the socket with no answer: the client cannot know whether the job was started."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


@dataclass
class FakeJob:
    id: str
    model: str
    fmt: str
    count: int
    size: tuple[int, int]
    callback_url: str | None
    outcome: str
    nsfw: bool = False
    polls: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    held: bool = False  # made while the fake was holding: at work until `release_callbacks()`


# What a broken answer says while `QueueFake.fault` is set: each a 200 with a body no client can read.
FAULT_BODIES = {
    "malformed": (b'{"request_id": "req_3f1c", "status": "IN_QUEUE", "respo', "application/json"),
    "html": (
        b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        b"<body><h1>Bad Gateway</h1><p>The upstream server is not answering.</p></body></html>",
        "text/html",
    ),
    "cut": (
        b'{"request_id": "req_3f1c", "status": "IN_QUEUE", "queue_position": 0, "response_url": "ht',
        "application/json",
    ),
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class QueueFake:
    """Base of a queue-style provider fake: script, jobs, files, callbacks.

    `fault` (one of FAULT_BODIES, or None): while set, every request of the provider's API (not its
    result files or published keys) is answered 200 with a body that cannot be read and nothing is
    made: "malformed" (JSON cut short, whole as sent), "html" (an HTML error page, as a proxy in front
    of the provider sends), "cut" (a JSON answer whose connection closes mid-way, short of the
    Content-Length it announced). `faulted` lists them."""

    def __init__(self) -> None:
        self.url = ""
        self.fault: str | None = None
        self.faulted: list[tuple[str, str]] = []  # (method, path) of each request answered so
        self.app = web.Application(middlewares=[self._faults])
        self.app.router.add_get("/files/{job}/{name}", self._file)
        self.submits: list[Received] = []
        self.status_calls: list[Received] = []
        self.callbacks_sent: list[tuple[str, int]] = []
        self.jobs: dict[str, FakeJob] = {}
        # Cues for the next submits, consumed in order: an HTTP status, "drop", "lost" (the job is made and
        # called back, the answer never sent), or None (answer normally).
        self.script: list[int | str | None] = []
        # Cues for the next status reads.
        self.status_script: list[int] = []
        # Final state of new jobs: "completed", or a provider-specific failure name.
        self.outcome = "completed"
        self.nsfw = False
        # Status reads answered "queued", then "running", before the final state (polling mode).
        self.polls_before_done = 2
        # How many times each callback is posted (2: a duplicate).
        self.callback_repeats = 1
        # True: callbacks wait in `held` until `release_callbacks()`.
        self.hold_callbacks = False
        self.held: list[tuple[str, bytes, dict[str, str]]] = []
        # True (see `hold()`): every job is still at work, whatever is asked, until `release_callbacks()`.
        self.holding = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.fault is None or request.path.startswith(("/files/", "/.well-known/")):
            return await handler(request)
        await request.read()
        self.faulted.append((request.method, request.path))
        body, content_type = FAULT_BODIES[self.fault]
        if self.fault != "cut":
            return web.Response(status=200, body=body, content_type=content_type)
        answer = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        answer.content_length = len(body) * 3  # announced, never sent whole
        await answer.prepare(request)
        await answer.write(body)
        if request.transport is not None:
            request.transport.close()
        return answer

    def fail_next(self, *cues: int | str | None) -> None:
        self.script.extend(cues)

    def take_cue(self) -> int | str | None:
        return self.script.pop(0) if self.script else None

    def new_job(self, prefix: str, **fields: Any) -> FakeJob:
        job = FakeJob(
            id=f"{prefix}_{uuid.uuid4()}", outcome=self.outcome, nsfw=self.nsfw, held=self.holding, **fields
        )
        self.jobs[job.id] = job
        return job

    def progress(self, job: FakeJob) -> str:
        """'queued', 'running' or the job's outcome; a job with a callback is done at once."""
        if self.holding or job.held:
            return "running"
        if job.callback_url is not None or job.polls > self.polls_before_done:
            return job.outcome
        return "queued" if job.polls <= 1 and self.polls_before_done >= 1 else "running"

    def file_urls(self, job: FakeJob) -> list[str]:
        return [f"{self.url}/files/{job.id}/{i}.{job.fmt}" for i in range(job.count)]

    async def _file(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job"])
        if job is None or job.outcome != "completed":
            return web.Response(status=404)
        return web.Response(body=make_image(*job.size, job.fmt), content_type=CONTENT_TYPES[job.fmt])

    async def fetch_reference(self, url: str) -> tuple[int, int] | str:
        """Download a reference image as the provider would: its size, or why it failed."""
        if not url.startswith(("http://", "https://")):
            return f"reference image is not a URL: {url[:40]}"
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return f"could not download reference image (HTTP {response.status})"
                data = await response.read()
            _, width, height = image_info(data)
        except (aiohttp.ClientError, OSError) as exc:
            return f"could not download reference image ({type(exc).__name__})"
        return width, height

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def post_callback(
        self, url: str, payload: Any, headers: Mapping[str, str] | None = None, *, body: bytes | None = None
    ) -> None:
        """Post the callback in the background, `callback_repeats` times, as the provider would.
        `body`: the exact bytes (when `headers` sign them)."""
        raw = json.dumps(payload).encode() if body is None else body
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.hold_callbacks:
            self.held.append((url, raw, hdrs))
            return

        async def deliver() -> None:
            for _ in range(self.callback_repeats):
                async with self.session.post(url, data=raw, headers=hdrs) as response:
                    self.callbacks_sent.append((url, response.status))

        task = asyncio.get_running_loop().create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def hold(self) -> None:
        """Keep every job at work: no callback goes out and status reads say running, until
        `release_callbacks()`; so a test knows its jobs are in flight for as long as it needs."""
        self.holding = self.hold_callbacks = True

    def release_callbacks(self) -> None:
        """Post the callbacks held so far (see `hold_callbacks`); held jobs finish (see `hold()`)."""
        self.hold_callbacks = self.holding = False
        for job in self.jobs.values():
            job.held = False
        held, self.held = self.held, []
        for url, raw, headers in held:
            self.post_callback(url, None, headers, body=raw)

    def hold_only_these(self) -> None:
        """The jobs made so far stay held (at work, their callbacks kept) until `release_callbacks()`;
        new ones are answered at once."""
        self.hold_callbacks = self.holding = False

    def post_held(self, count: int) -> list[str]:
        """Post the first `count` held callbacks now (the others stay held); their URLs."""
        now, self.held = self.held[:count], self.held[count:]
        holding, self.hold_callbacks = self.hold_callbacks, False
        for url, raw, headers in now:
            self.post_callback(url, None, headers, body=raw)
        self.hold_callbacks = holding
        return [url for url, _, _ in now]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[QueueFake]:
        async with serve(self.app) as url:
            self.url = url
            try:
                yield self
            finally:
                await self.aclose()


class Receiver:
    """The bot's server, as far as a provider sees it: callbacks in, reference images out."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self._changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_post("/webhooks/{token}", self._hook)
        self.app.router.add_get("/media/{name}", self._media)

    def add_media(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        self.media[name] = (data, content_type)
        return f"{self.url}/media/{name}"

    def hook_url(self, token: str = "tok") -> str:
        return f"{self.url}/webhooks/{token}"

    async def _hook(self, request: web.Request) -> web.Response:
        got = await record(request)
        async with self._changed:
            self.received.append(got)
            self._changed.notify_all()
        return web.json_response({"ok": True})

    async def _media(self, request: web.Request) -> web.Response:
        found = self.media.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    async def wait_for(self, count: int, within: float = 30.0) -> list[Received]:
        """Wait until at least `count` callbacks arrived (generous limit; never a fixed sleep)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        async with serve(self.app) as url:
            self.url = url
            yield self


class Sleeps:
    """Instant retries: records the delays asked for instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def poll(provider: Provider, job_id: str, limit: int = 10) -> tuple[list[str], ProviderStatus]:
    """Read a job's status until it is final; the fakes advance once per read, so nothing waits."""
    states: list[str] = []
    for _ in range(limit):
        status = await provider.status(job_id)
        states.append(status.state)
        if status.state in ("completed", "failed"):
            return states, status
    raise AssertionError(f"no final state after {limit} reads: {states}")


async def download(client: Transport, status: ProviderStatus) -> list[tuple[str, int, int]]:
    """Fetch every result image; (format, width, height) of each."""
    infos = []
    for image in status.images:
        response = await client.get(image.url)
        assert response.status == 200, image.url
        infos.append(image_info(response.body))
    return infos

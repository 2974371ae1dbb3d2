"""The sandbox's "remote" side: its HTTP routes on the bot's own server, under /sandbox/, and its
callback sender (the client, settings and plugin are in sandbox.py).

It is meant for one machine: its bearer token is made anew by each process, it sends requests only to
the bot's own server (OwnServer: reference images from /media/ links, callbacks to /webhooks/), and
jobs older than its retention are swept from memory and disk.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from bot.model.requests import MAX_REFERENCES
from bot.providers.base import Sleep, encode_json
from bot.providers.sandbox import art as sandbox_art
from bot.providers.sandbox.jobs import (
    FAIL_MESSAGE,
    MAX_REFERENCE_BYTES,
    Invalid,
    JobFiles,
    OwnServer,
    SandboxJob,
    decode_data_uri,
    parse_body,
)
from bot.transport import TooLarge, Transport, TransportError

log = logging.getLogger(__name__)

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DAY = 86400.0


def submit_body_limit(max_image_bytes: int) -> int:
    """The largest submit body: MAX_REFERENCES data URIs of images of `max_image_bytes` each (base64
    makes 4 characters of every 3 bytes; 100 more for the `data:image/...;base64,` head and the JSON
    around it), and 64 KiB for the rest (a 5000-character prompt is 30 KB even fully escaped)."""
    per_image = 4 * -(-max_image_bytes // 3) + 100
    return MAX_REFERENCES * per_image + 64 * 1024


class SandboxService:
    """The fake provider's HTTP routes and its callback sender. Enter it to resume unsent callbacks
    and to start sweeping old jobs (at once, then every `sweep_every` seconds)."""

    def __init__(
        self,
        client: Transport,
        state_dir: Path,
        *,
        own: OwnServer,
        delay: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Sleep | None = None,
        callback_attempts: int = 5,
        callback_backoff: float = 0.25,
        max_image_bytes: int = MAX_REFERENCE_BYTES,
        max_age: float | None = 30 * DAY,
        max_jobs: int = 1000,
        sweep_every: float = 3600.0,
        sweep_sleep: Sleep | None = None,
    ) -> None:
        self.client = client
        self.files = JobFiles(Path(state_dir))
        self.own = own
        # A new one every process: only the SandboxProvider this service is given to knows it.
        self.token = secrets.token_urlsafe(32)
        self.delay = delay
        self.clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._callback_attempts = callback_attempts
        self._callback_backoff = callback_backoff
        self.max_image_bytes = max_image_bytes
        self.max_age = max_age
        self.max_jobs = max_jobs
        self.sweep_every = sweep_every
        self._sweep_sleep: Sleep = sweep_sleep or asyncio.sleep
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # The most recently used jobs; the others are read back from their files when asked for.
        self._jobs: OrderedDict[str, SandboxJob] = OrderedDict()
        # Counters for tests: a callback-mode job should never have been polled.
        self.submits = 0
        self.polls = 0
        self.sweeps = 0

    async def __aenter__(self) -> SandboxService:
        await self._sweep_logged()
        for job_id in self.files.ids():
            job = self.files.load(job_id)
            if job is not None and job.webhook_url and not job.callback_done:
                self._remember(job)
                self._spawn(job)
        if self.max_age is not None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="sandbox-sweep"
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = list(self._tasks)
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def received(self) -> list[SandboxJob]:
        """The jobs this service holds in memory (the most recent, at most `max_jobs`), each with its
        reference images read back from its files."""
        jobs = (self.files.load(job_id, references=True) for job_id in list(self._jobs))
        return [job for job in jobs if job is not None]

    @property
    def held(self) -> int:
        """How many jobs are held in memory."""
        return len(self._jobs)

    @property
    def pending_callbacks(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every callback in flight was delivered or given up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def sweep(self) -> list[str]:
        """Forget the jobs older than `max_age` (from memory and disk); returns their ids."""
        if self.max_age is None:
            return []
        removed = await asyncio.to_thread(self.files.sweep, self.clock() - self.max_age)
        for job_id in removed:
            self._jobs.pop(job_id, None)
        self.sweeps += 1
        if removed:
            log.info("sandbox: removed %d job(s) older than %.0f days", len(removed), self.max_age / DAY)
        return removed

    async def _sweep_forever(self) -> None:
        while True:
            await self._sweep_sleep(self.sweep_every)
            await self._sweep_logged()

    async def _sweep_logged(self) -> None:
        try:
            await self.sweep()
        except OSError as exc:
            log.warning("sandbox: sweeping old jobs failed: %s", exc)

    def register_routes(self, app: web.Application) -> None:
        limit = submit_body_limit(self.max_image_bytes)
        app.router.add_post("/sandbox/v1/images", _limited(self._submit, limit))
        app.router.add_get("/sandbox/v1/images/{id}", self._status)
        app.router.add_get("/sandbox/v1/files/{id}/{index}.{ext}", self._file)

    async def _submit(self, request: web.Request) -> web.Response:
        self.submits += 1
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _error(401, "missing or wrong Authorization header (the sandbox's token of this process)")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body: must be JSON")
        try:
            job, urls = parse_body(body, now=self.clock(), base_url=self.own.url)
            if job.webhook_url is not None:
                job.webhook_url = self._own_link("webhook_url", job.webhook_url, "webhooks")
            references = [await self._reference(i, url) for i, url in enumerate(urls)]
        except Invalid as exc:
            return _error(400, str(exc))
        job.n_refs = len(references)
        await asyncio.to_thread(self.files.save, job, references)
        self._remember(job)
        if job.webhook_url:
            self._spawn(job)
        return web.json_response({"id": job.id, "status": "queued"}, status=202)

    async def _status(self, request: web.Request) -> web.Response:
        self.polls += 1
        job = self._job(request.match_info["id"])
        if job is None:
            return _error(404, "no such job")
        return web.json_response(self._view(job, str(request.url.origin())))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        job = self._job(request.match_info["id"])
        index = request.match_info["index"]
        if (
            job is None
            or self._phase(job) != "completed"
            or request.match_info["ext"] != job.output_format
            or not (index.isdigit() and int(index) < job.num_images)
        ):
            return _error(404, "no such file")
        data = await asyncio.to_thread(self.files.image, job, int(index))
        return web.Response(body=data, content_type=_MIME[job.output_format])

    async def _reference(self, index: int, url: str) -> bytes:
        name = f"reference_image_urls[{index}]"
        if url.startswith("data:"):
            data = decode_data_uri(name, url)
        elif url.startswith(("http://", "https://")):
            data = await self._fetch(name, self._own_link(name, url, "media"))
        else:
            raise Invalid(f"{name}: must be a data: URI or a link to the bot's own /media/")
        if len(data) > self.max_image_bytes:
            raise Invalid(f"{name}: larger than {self.max_image_bytes} bytes")
        try:
            await asyncio.to_thread(sandbox_art.decode_image, data)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise Invalid(f"{name}: is not an image Pillow can read") from exc
        return data

    def _own_link(self, name: str, url: str, route: str) -> str:
        """`url` on the bot's own server, or Invalid: the sandbox reaches nothing else."""
        local = self.own.local(url, route)
        if local is None:
            raise Invalid(
                f"{name}: the sandbox only uses the bot's own {self.own.url}/{route}/... links"
                + (" and data: URIs" if route == "media" else "")
            )
        return local

    async def _fetch(self, name: str, url: str) -> bytes:
        try:
            async with self.client.stream(url, max_bytes=self.max_image_bytes) as response:
                if response.status != 200:
                    raise Invalid(f"{name}: fetching it answered HTTP {response.status}")
                return await response.read()
        except TooLarge:
            raise Invalid(f"{name}: larger than {self.max_image_bytes} bytes") from None
        except TransportError as exc:
            raise Invalid(f"{name}: could not be fetched ({type(exc).__name__})") from exc

    def _job(self, job_id: str) -> SandboxJob | None:
        job = self._jobs.get(job_id)
        if job is None:
            job = self.files.load(job_id)
        if job is not None:
            self._remember(job)
        return job

    def _remember(self, job: SandboxJob) -> None:
        self._jobs[job.id] = job
        self._jobs.move_to_end(job.id)
        while len(self._jobs) > self.max_jobs:
            self._jobs.popitem(last=False)

    def _phase(self, job: SandboxJob) -> str:
        """Where a job is, from its submit time alone: no timers, and it survives a restart."""
        elapsed = self.clock() - job.submitted_at
        if elapsed >= self.delay:
            return "failed" if job.fails else "completed"
        return "queued" if elapsed < self.delay / 2 else "processing"

    def _view(self, job: SandboxJob, base_url: str, phase: str | None = None) -> dict[str, Any]:
        phase = phase or self._phase(job)
        return {
            "id": job.id,
            "status": phase,
            "images": job.image_urls(base_url) if phase == "completed" else [],
            "seed": job.seed,
            "error": FAIL_MESSAGE if phase == "failed" else None,
        }

    def _spawn(self, job: SandboxJob) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(job), name=f"sandbox-callback-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: SandboxJob) -> None:
        url = job.webhook_url
        if url is None:
            return
        wait = job.submitted_at + self.delay - self.clock()
        if wait > 0:
            await self._sleep(wait)
        # Finished by now whatever the injected clock says, so the outcome is stated directly.
        view = self._view(job, job.base_url, "failed" if job.fails else "completed")
        body = {key: view[key] for key in ("id", "status", "images")}
        for attempt in range(self._callback_attempts):
            try:
                response = await self.client.do_request(
                    "POST", url, headers={"Content-Type": "application/json"}, body=encode_json(body)
                )
            except TransportError as exc:
                log.info("sandbox: callback for %s failed (%s)", job.id, type(exc).__name__)
            else:
                if response.status < 500:
                    if response.status >= 400:
                        log.warning("sandbox: callback for %s answered HTTP %s", job.id, response.status)
                    break
            if attempt + 1 < self._callback_attempts:
                await self._sleep(self._callback_backoff * 2**attempt)
        # Sent or given up: either way not again after a restart (the bot polls what it missed).
        job.callback_done = True
        await asyncio.to_thread(self.files.save_record, job)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _limited(
    handler: Callable[[web.Request], Awaitable[web.Response]], max_bytes: int
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`handler`, carrying the largest request body its route takes as `max_body`: the bot's server
    (bot.web.server.limit_body, a layer above this one) refuses a larger body before calling it."""

    async def limited(request: web.Request) -> web.Response:
        return await handler(request)

    limited.max_body = max_bytes  # type: ignore[attr-defined]
    return limited

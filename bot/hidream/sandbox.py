"""The sandbox: a local stand-in for a HiDream provider, and the client the bot uses to talk to it.

`SandboxService` is the "remote" side, mounted on the bot's own HTTP server under /sandbox/, so a job
takes the same path as with a real provider: submit over HTTP, then a callback or polling, then image
downloads. Its pictures are Pillow placeholders with a SANDBOX mark (sandbox_art.py); its jobs are
files in `state_dir` (sandbox_jobs.py), written before the submit is answered, so a bot killed at any
moment can still poll them, and their callbacks are sent once it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from aiohttp import web
from PIL import Image
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bot.config import PluginSettings, Settings
from bot.errors import ProviderBusy
from bot.hidream import sandbox_art
from bot.hidream.base import (
    HttpProvider,
    Provider,
    ProviderStatus,
    ResultImage,
    RetryPolicy,
    Sleep,
    State,
    SubmitSpec,
)
from bot.hidream.plugin import ProviderContext, ProviderPlugin
from bot.hidream.sandbox_jobs import (
    FAIL_MESSAGE,
    MAX_REFERENCE_BYTES,
    Invalid,
    JobFiles,
    SandboxJob,
    decode_data_uri,
    parse_body,
)
from bot.requests import ImageRequest, Tier

log = logging.getLogger(__name__)

TOKEN = "sandbox"
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class SandboxService:
    """The fake provider's HTTP routes and its callback sender. Enter it to resume unsent callbacks."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        state_dir: Path,
        *,
        delay: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Sleep | None = None,
        callback_attempts: int = 5,
        callback_backoff: float = 0.25,
    ) -> None:
        self.client = client
        self.files = JobFiles(Path(state_dir))
        self.delay = delay
        self.clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._callback_attempts = callback_attempts
        self._callback_backoff = callback_backoff
        self._tasks: set[asyncio.Task[None]] = set()
        self._jobs: dict[str, SandboxJob] = {}
        # Counters for tests: a callback-mode job should never have been polled.
        self.submits = 0
        self.polls = 0

    async def __aenter__(self) -> SandboxService:
        for job_id in self.files.ids():
            job = self._job(job_id)
            if job is not None and job.webhook_url and not job.callback_done:
                self._spawn(job)
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def received(self) -> list[SandboxJob]:
        """The jobs this service holds: received since it started, or read back from its state dir."""
        return list(self._jobs.values())

    @property
    def pending_callbacks(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every callback in flight was delivered or given up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def register_routes(self, app: web.Application) -> None:
        app.router.add_post("/sandbox/v1/images", self._submit)
        app.router.add_get("/sandbox/v1/images/{id}", self._status)
        app.router.add_get("/sandbox/v1/files/{id}/{index}.{ext}", self._file)

    async def _submit(self, request: web.Request) -> web.Response:
        self.submits += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, f"missing or wrong Authorization header: send `Bearer {TOKEN}`")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body: must be JSON")
        try:
            job, urls = parse_body(body, now=self.clock(), base_url=str(request.url.origin()))
            job.references = [await self._reference(i, url) for i, url in enumerate(urls)]
        except Invalid as exc:
            return _error(400, str(exc))
        job.n_refs = len(job.references)
        await asyncio.to_thread(self.files.save, job)
        self._jobs[job.id] = job
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
            data = await self._fetch(name, url)
        else:
            raise Invalid(f"{name}: must be a data: URI or an http(s) URL")
        try:
            await asyncio.to_thread(sandbox_art.decode_image, data)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise Invalid(f"{name}: is not an image Pillow can read") from exc
        return data

    async def _fetch(self, name: str, url: str) -> bytes:
        try:
            async with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise Invalid(f"{name}: fetching it answered HTTP {response.status_code}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_REFERENCE_BYTES:
                        raise Invalid(f"{name}: larger than {MAX_REFERENCE_BYTES} bytes")
                return bytes(data)
        except httpx.HTTPError as exc:
            raise Invalid(f"{name}: could not be fetched ({type(exc).__name__})") from exc

    def _job(self, job_id: str) -> SandboxJob | None:
        job = self._jobs.get(job_id)
        if job is None:
            job = self.files.load(job_id)
            if job is not None:
                self._jobs[job_id] = job
        return job

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
                response = await self.client.post(url, json=body)
            except httpx.TransportError as exc:
                log.info("sandbox: callback for %s failed (%s)", job.id, type(exc).__name__)
            else:
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning("sandbox: callback for %s answered HTTP %s", job.id, response.status_code)
                    break
            if attempt + 1 < self._callback_attempts:
                await self._sleep(self._callback_backoff * 2**attempt)
        # Sent or given up: either way not again after a restart (the bot polls what it missed).
        job.callback_done = True
        await asyncio.to_thread(self.files.save_record, job)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- the client -------------------------------------------------------------------------------------

_STATES: dict[str, State] = {
    "queued": "queued",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
}


class SandboxSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="HIDREAM_SANDBOX_")

    # Seconds the sandbox waits before finishing a job (0: at once).
    delay_seconds: float = Field(default=0.5, ge=0)


class SandboxProvider(HttpProvider[SandboxSettings]):
    """Talks to a SandboxService (normally the bot's own server) like to any real provider. When it is
    given the service, it starts and stops it with itself."""

    name = "sandbox"
    settings_class = SandboxSettings
    signs_callbacks = False
    accepts_data_uris = True
    poll_interval = 0.25

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        options: SandboxSettings | None = None,
        service: SandboxService | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(settings, client, options=options, retry=retry, sleep=sleep)
        self.base_url = base_url.rstrip("/")
        self.service = service

    async def __aenter__(self) -> SandboxProvider:
        if self.service is not None:
            await self.service.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.service is not None:
            await self.service.__aexit__(*exc)

    def tiers(self) -> tuple[Tier, ...]:
        return ("full", "dev")

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return [
            "sandbox: a local placeholder provider, not HiDream; its images are marked SANDBOX",
            f"submit: POST {self.base_url}/v1/images",
            f"status: GET {self.base_url}/v1/images/{{id}}",
            f"files:  GET {self.base_url}/v1/files/{{id}}/{{index}}.{{format}}",
        ]

    async def submit(self, spec: SubmitSpec) -> str:
        request = spec.request
        width, height = request.dimensions()
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": width,
            "height": height,
            "seed": request.seed if request.seed is not None else 0,
            "num_images": request.n,
            "output_format": request.format,
            "model": spec.tier,
            "reference_image_urls": list(spec.reference_urls),
            "keep_original_aspect": request.keep_aspect,
        }
        if spec.callback_url:
            body["webhook_url"] = spec.callback_url
        answer = await self.call(
            "POST", f"{self.base_url}/v1/images", idempotent=False, json=body, headers=self._auth(),
            key_name="(sandbox)",
        )  # fmt: skip
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise ProviderBusy(
                "The sandbox sent an answer that could not be read.", detail="no id in submit answer"
            )
        return job_id

    async def status(self, provider_job_id: str) -> ProviderStatus:
        answer = await self.call(
            "GET", f"{self.base_url}/v1/images/{quote(provider_job_id, safe='')}", idempotent=True,
            headers=self._auth(), key_name="(sandbox)",
        )  # fmt: skip
        state = _STATES.get(answer.get("status", "")) if isinstance(answer, dict) else None
        if state is None:
            raise ProviderBusy("The sandbox sent a status that could not be read.", detail=str(answer)[:200])
        urls = answer.get("images") or []
        seed = answer.get("seed")
        return ProviderStatus(
            state=state,
            images=[ResultImage(url=u) for u in urls if isinstance(u, str)] if state == "completed" else [],
            error=(answer.get("error") or "The sandbox job failed.") if state == "failed" else None,
            seed=seed if isinstance(seed, int) else None,
        )

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        # Sandbox callbacks are unsigned: only a hint to read the status.
        return None

    @staticmethod
    def _auth() -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


class SandboxPlugin(ProviderPlugin[SandboxSettings]):
    """Needs no account: the provider when no other is configured. Its fake API lives on the bot's
    own server under /sandbox/, its jobs in a folder beside the database."""

    name = "sandbox"
    settings_class = SandboxSettings
    preference = 1000
    fallback = True

    def configured(self, settings: SandboxSettings) -> bool:
        return True

    def missing(self, settings: SandboxSettings) -> str | None:
        return None

    def build(self, context: ProviderContext, settings: SandboxSettings) -> SandboxProvider:
        service = SandboxService(context.http, context.state_dir, delay=settings.delay_seconds)
        return SandboxProvider(
            context.settings,
            context.http,
            base_url=f"{context.server_url}/sandbox",
            options=settings,
            service=service,
        )

    def add_routes(self, app: web.Application, provider: Provider) -> None:
        assert isinstance(provider, SandboxProvider) and provider.service is not None
        provider.service.register_routes(app)


plugin = SandboxPlugin()

__all__ = ["SandboxJob", "SandboxPlugin", "SandboxProvider", "SandboxService", "SandboxSettings", "plugin"]

"""A job's life: admit (validate, fetch references, reserve) -> submit -> wait (callback or poll)
-> fetch results -> deliver through the surface that asked -> settle.

Every step starts from the state stored in SQLite, so a job picked up after a crash continues where
it was: nothing in memory is needed to finish it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from bot import runner
from bot.config import Settings
from bot.errors import BadInput, CallbackRejected, JobTimedOut
from bot.hidream.base import Provider, Sleep, SubmitSpec, status_to_dict
from bot.jobs import TERMINAL, Job, JobState, OutputImage, Progress, Surface
from bot.media import LinkSigner, Resolver, fetch_image, system_resolver, to_data_uri
from bot.requests import SEED_MAX, ChatRequest, ImageRef, Tier, check_tier_limits
from storage.sqlite import QuotaStatus, Store

log = logging.getLogger(__name__)

MAX_REFERENCES = 4
PROGRESS_EVERY = 2.0
# While waiting for a callback, poll anyway after this long: callbacks can be lost.
CALLBACK_GRACE = 30.0
POLL_CAP = 15.0


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        http: httpx.AsyncClient,
        *,
        clock: Any = time.time,
        sleep: Sleep = asyncio.sleep,
        resolver: Resolver = system_resolver,
        callback_grace: float = CALLBACK_GRACE,
    ) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.http = http
        self.clock = clock
        self._sleep = sleep
        self.resolver = resolver
        self.callback_grace = callback_grace
        self.surfaces: dict[str, Surface] = {}
        self.signer: LinkSigner | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakers: dict[str, asyncio.Event] = {}
        self._last_progress: dict[str, float] = {}

    # --- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        secret = await self.store.secret("media-links")
        self.signer = LinkSigner(secret, self.settings.public_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def add_surface(self, surface: Surface) -> None:
        self.surfaces[surface.name] = surface

    async def resume(self) -> int:
        """Start a runner for every job that is not finished. Called once surfaces are registered."""
        jobs = await self.store.unfinished_jobs()
        for job in jobs:
            self._start(job.id)
        if jobs:
            log.info("resumed %d unfinished job(s)", len(jobs))
        return len(jobs)

    async def wait_idle(self) -> None:
        """Wait until every job this process is running has finished (delivered, failed or parked)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def wait_job(self, job_id: str) -> Job | None:
        """Wait until this process has finished running the job; return it as stored."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task])
        return await self.store.job(job_id)

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.settings.public_url)

    # --- admission --------------------------------------------------------------------------------

    async def submit(self, chat: ChatRequest, *, dedup_key: str | None = None) -> Job:
        """Admit a request: validate, fetch references, reserve quota and store the job; then run it.
        Raises UserFacingError (nothing spent) when the request cannot be admitted."""
        if dedup_key is not None:
            existing = await self.store.job_by_dedup(dedup_key)
            if existing is not None:
                return existing
        request = chat.request
        tier = self._tier_for(request.model)
        check_tier_limits(request, tier)
        if len(chat.references) > MAX_REFERENCES:
            raise BadInput(f"{len(chat.references)} images were given; use at most {MAX_REFERENCES}.")
        self.provider.validate(request, tier, len(chat.references))
        if chat.references and not self.callbacks_enabled and not self.provider.accepts_data_uris:
            raise BadInput(
                f"Editing images with the {self.provider.name} provider needs the bot to be reachable from the "
                "internet: an operator must set HIDREAM_PUBLIC_URL."
            )
        media_ids = [await self._ingest(ref) for ref in chat.references]
        seed = request.seed if request.seed is not None else random.randint(0, SEED_MAX)
        request = request.with_changes(seed=seed, model=tier)
        now = self.clock()
        job = Job(
            id=uuid.uuid4().hex,
            surface=chat.surface,
            user_id=chat.user_id,
            workspace_id=chat.workspace_id,
            origin=chat.origin,
            request=request,
            tier=tier,
            provider=self.provider.name,
            state=JobState.QUEUED,
            callback_token=secrets.token_urlsafe(32),
            created_at=now,
            deadline=now + self.settings.job_timeout_seconds,
            parent_job_id=chat.parent_job_id,
            reference_media=media_ids,
            seed=seed,
            cost_usd=self.provider.cost_usd(request, tier),
        )
        stored = await self.store.admit(job, workspace_key=self._workspace_key(job), dedup_key=dedup_key)
        if stored.id == job.id:
            log.info("job %s admitted: %s, %d image(s), %s", job.id, job.mode, request.n, tier)
            self._start(job.id)
        return stored

    def _tier_for(self, asked: Tier | None) -> Tier:
        offered = self.provider.tiers()
        if asked is not None:
            return asked  # validated against the provider's tiers with a clear message
        return self.settings.model if self.settings.model in offered else offered[0]

    async def _ingest(self, ref: ImageRef) -> str:
        if ref.media_id is not None:
            if await self.store.media(ref.media_id) is None:
                raise BadInput("That image is no longer held by the bot; attach it again.")
            return ref.media_id
        image = await fetch_image(
            self.http,
            ref.url,
            typed=ref.typed,
            max_bytes=self.settings.max_image_bytes,
            headers=ref.headers,
            resolver=self.resolver,
        )
        return await self.store.put_media(image.data, image.content_type, image.width, image.height)

    # --- queries for surfaces -----------------------------------------------------------------------

    async def job(self, job_id: str) -> Job | None:
        return await self.store.job(job_id)

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self.store.job_for_post(surface, message_key)

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        return await self.store.latest_job_in_thread(surface, thread_key)

    async def result_images(self, job: Job) -> list[OutputImage]:
        images = []
        for media_id in job.result_media:
            m = await self.store.media(media_id)
            if m is not None:
                images.append(OutputImage(m.id, m.data, m.content_type, m.width, m.height, m.nsfw))
        return images

    def references_of(self, job: Job, index: int | None = None) -> list[ImageRef]:
        chosen = job.result_media if index is None else job.result_media[index : index + 1]
        return [ImageRef(url="", media_id=m) for m in chosen]

    async def reroll(
        self, job: Job, *, user_id: str, origin: dict[str, Any], dedup_key: str | None = None
    ) -> Job:
        chat = ChatRequest(
            surface=job.surface,
            user_id=user_id,
            workspace_id=job.workspace_id,
            origin=origin,
            request=job.request.with_changes(seed=None),
            references=[ImageRef(url="", media_id=m) for m in job.reference_media],
            parent_job_id=job.id,
        )
        return await self.submit(chat, dedup_key=dedup_key)

    async def mark_deleted(self, job: Job) -> None:
        await self.store.forget_posts(job.id)

    # --- quota ------------------------------------------------------------------------------------

    @staticmethod
    def _workspace_key(job: Job) -> str:
        return f"{job.surface}:{job.workspace_id}"

    async def quota(self, surface: str, user_id: str, workspace_id: str) -> QuotaStatus:
        return await self.store.quota(f"{surface}:{user_id}", f"{surface}:{workspace_id}")

    async def set_limit(
        self, scope: Literal["user", "workspace"], surface: str, subject_id: str, limit: int | None
    ) -> None:
        await self.store.set_limit(scope, f"{surface}:{subject_id}", limit)

    async def grant(self, surface: str, user_id: str, images: int) -> None:
        await self.store.grant(f"{surface}:{user_id}", images)

    async def reset(self, surface: str, user_id: str) -> None:
        await self.store.reset(f"{surface}:{user_id}")

    # --- callbacks --------------------------------------------------------------------------------

    async def handle_callback(self, token: str, headers: Mapping[str, str], body: bytes) -> None:
        """A provider's callback for the job that owns `token`. Raises CallbackRejected (-> 4xx)."""
        job = await self.store.job_by_token(token)
        if job is None:
            raise CallbackRejected("unknown callback token", status=404)
        status = await self.provider.parse_callback(job.provider_job_id, headers, body)
        if job.state in TERMINAL:
            return  # a repeat or a late one: accepted, changes nothing
        if status is not None:
            await self.store.record_callback(job.id, status_to_dict(status))
        self._waker(job.id).set()

    def _waker(self, job_id: str) -> asyncio.Event:
        return self._wakers.setdefault(job_id, asyncio.Event())

    # --- the runner -------------------------------------------------------------------------------

    def _start(self, job_id: str) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._wakers.pop(job_id, None)
        self._last_progress.pop(job_id, None)

    async def _run(self, job_id: str) -> None:
        try:
            await runner.run_job(self, job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", job_id)
            job = await self.store.job(job_id)
            if job is not None and job.state not in TERMINAL:
                await self.fail(job, "Something went wrong inside the bot; your quota was given back.")

    async def fail(self, job: Job, message: str) -> None:
        """Mark the job failed (its reservation released in the same transaction) and tell the requester."""
        states = tuple(s for s in JobState if s not in TERMINAL)
        if not await self.store.transition(job.id, states, JobState.FAILED, error=message):
            return
        log.info("job %s failed: %s", job.id, message)
        surface = self.surfaces.get(job.surface)
        if surface is not None:
            try:
                await surface.tell(job, message)
            except Exception:
                log.exception("job %s: could not tell the requester", job.id)

    async def progress(
        self, job: Job, stage: str, queue_position: int | None = None, *, force: bool = False
    ) -> None:
        now = self.clock()
        last = self._last_progress.get(job.id)
        if not force and last is not None and now - last < PROGRESS_EVERY:
            return
        surface = self.surfaces.get(job.surface)
        if surface is None:
            return
        self._last_progress[job.id] = now
        try:
            await surface.progress(job, Progress(stage, now - job.created_at, queue_position))
        except Exception:
            log.warning("job %s: progress update failed", job.id, exc_info=True)

    async def wait_for_wake(self, job_id: str, seconds: float) -> bool:
        """Sleep until a callback wakes the job or `seconds` pass. True when woken."""
        event = self._waker(job_id)
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        event.clear()
        return True

    def submit_spec(self, job: Job, reference_urls: list[str]) -> SubmitSpec:
        callback = (
            f"{self.settings.public_url}/webhooks/{job.callback_token}" if self.callbacks_enabled else None
        )
        return SubmitSpec(job.id, job.request, job.tier, reference_urls, callback)

    async def reference_urls(self, job: Job) -> list[str]:
        urls = []
        for media_id in job.reference_media:
            if self.callbacks_enabled and self.signer is not None:
                ttl = max(600.0, job.deadline - self.clock())
                urls.append(self.signer.link(media_id, now=self.clock(), ttl=ttl))
            else:
                m = await self.store.media(media_id)
                if m is None:
                    raise BadInput("A reference image is no longer held by the bot; attach it again.")
                urls.append(to_data_uri(m.data, m.content_type))
        return urls

    def timed_out(self, job: Job) -> JobTimedOut | None:
        if self.clock() <= job.deadline:
            return None
        minutes = round(self.settings.job_timeout_seconds / 60)
        return JobTimedOut(
            f"The image took longer than {minutes} minutes, so the bot gave up; your quota was given back."
        )


__all__ = ["Engine"]

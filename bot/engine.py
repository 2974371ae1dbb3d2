"""Admission and queries: validate a request, fetch its references, reserve quota and store the job,
then hand it to the `JobRunner`, which runs it. The engine never runs a job itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from bot.config import Settings
from bot.errors import BadInput, CallbackRejected, QuotaExceeded
from bot.hidream.base import Provider, Sleep, status_to_dict
from bot.jobs import TERMINAL, Job, JobState, OutputImage, Surface, tenant_of
from bot.logs import job_fields
from bot.media import TYPED_FETCH_SECONDS, LinkSigner, Resolver, fetch_image, system_resolver
from bot.metrics import Metrics
from bot.requests import MAX_REFERENCES, SEED_MAX, ChatRequest, ImageRef, Tier, check_tier_limits
from bot.retention import too_old
from bot.runner import CALLBACK_GRACE, JobRunner
from storage.base import Store
from storage.quota import Charge, QuotaStatus
from storage.retention import sweeps_for

log = logging.getLogger(__name__)

T = TypeVar("T")


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        resolver: Resolver = system_resolver,
        callback_grace: float = CALLBACK_GRACE,
        typed_http: httpx.AsyncClient | None = None,
        typed_fetch_seconds: float = TYPED_FETCH_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        # URLs people typed are fetched apart from provider and platform traffic (bot.app gives this
        # engine a client of their own), and each must arrive within `typed_fetch_seconds`.
        self.typed_http = typed_http or http
        self.typed_fetch_seconds = typed_fetch_seconds
        self.clock = clock
        self.resolver = resolver
        # Every running provider by name: a job is worked by the provider it was admitted with.
        self.providers: dict[str, Provider] = {provider.name: provider}
        self._admitting = provider.name
        self.metrics = Metrics(store)
        self.runner = JobRunner(
            settings,
            store,
            self.providers,
            http,
            clock=clock,
            sleep=sleep,
            callback_grace=callback_grace,
            metrics=self.metrics,
        )

    # --- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.runner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.__aexit__(*exc)

    @property
    def provider(self) -> Provider:
        """The provider new jobs are admitted to."""
        return self.providers[self._admitting]

    @property
    def signer(self) -> LinkSigner | None:
        return self.runner.signer

    def add_surface(self, surface: Surface) -> None:
        self.runner.add_surface(surface)

    async def resume(self) -> int:
        """Start every job that is not finished. Called once surfaces are registered."""
        return await self.runner.resume()

    async def wait_idle(self) -> None:
        """Wait until every job this process is running has finished (delivered, failed or parked)."""
        await self.runner.wait_idle()

    async def wait_job(self, job_id: str) -> Job | None:
        """Wait until this process has finished running the job; return it as stored."""
        await self.runner.wait_job(job_id)
        return await self.store.job(job_id)

    @property
    def callbacks_enabled(self) -> bool:
        return self.runner.callbacks_enabled

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
        tenant = self.tenant(chat.surface, chat.workspace_id, chat.user_id)
        cost = self.provider.cost_usd(request, tier)
        # The cheap look first: a request that cannot be admitted fetches and stores no bytes.
        await self._counted(
            self.store.check(Charge(f"{chat.surface}:{chat.user_id}", tenant, request.n, cost))
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
            cost_usd=cost,
        )
        stored = await self._counted(self.store.admit(job, workspace_key=tenant, dedup_key=dedup_key))
        if stored.id == job.id:
            log.info(
                "job %s admitted: %s, %d image(s), %s",
                job.id,
                job.mode,
                request.n,
                tier,
                extra=job_fields(job),
            )
            self.runner.start(job.id)
        return stored

    async def _counted(self, step: Awaitable[T]) -> T:
        """`step`, its quota or budget refusal counted for /metrics."""
        try:
            return await step
        except QuotaExceeded as exc:
            self.metrics.refused(exc)
            raise

    def _tier_for(self, asked: Tier | None) -> Tier:
        offered = self.provider.tiers()
        if asked is not None:
            return asked  # validated against the provider's tiers with a clear message
        return self.settings.model if self.settings.model in offered else offered[0]

    async def _ingest(self, ref: ImageRef) -> str:
        if ref.media_id is not None:
            if not await sweeps_for(self.store).touch_media(ref.media_id):
                raise BadInput(too_old(self.settings.media_retention_days))
            return ref.media_id
        image = await fetch_image(
            self.typed_http if ref.typed else self.http,
            ref.url,
            typed=ref.typed,
            max_bytes=self.settings.max_image_bytes,
            headers=ref.headers,
            resolver=self.resolver,
            total_seconds=self.typed_fetch_seconds if ref.typed else None,
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
        """The job's images as held. Raises BadInput when retention has deleted any of them."""
        images = await self.runner.result_images(job)
        if len(images) < len(job.result_media):
            raise BadInput(too_old(self.settings.media_retention_days))
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

    async def first_time(self, key: str) -> bool:
        """True the first time any replica is handed the platform event `key`; False for a resend."""
        return await self.runner.replicas.first_sight(key)

    async def mark_deleted(self, job: Job) -> None:
        await self.store.forget_posts(job.id)

    async def fail_workspace(self, surface: str, workspace_id: str, message: str) -> int:
        """Fail every unfinished job of a workspace that removed the bot (its quota given back, as any
        failure's); how many. A job still running sees its failed state at its next step and stops."""
        jobs = [
            j
            for j in await self.store.unfinished_jobs()
            if j.surface == surface and j.workspace_id == workspace_id
        ]
        for job in jobs:
            await self.runner.fail(job, message)
        return len(jobs)

    # --- quota: every count, limit and grant belongs to a tenant (storage/quota.py) ---------------

    @staticmethod
    def tenant(surface: str, workspace_id: str, user_id: str) -> str:
        """The tenant a request counts in: its server or workspace; a DM or the console: its user."""
        return tenant_of(surface, workspace_id, user_id)

    async def quota(self, surface: str, user_id: str, workspace_id: str) -> QuotaStatus:
        status = await self.store.quota(f"{surface}:{user_id}", self.tenant(surface, workspace_id, user_id))
        return replace(status, show_spend=self.settings.show_spend)

    async def admin_set_limit(
        self, surface: str, workspace_id: str, user_id: str | None, limit: int | None
    ) -> None:
        """A tenant admin's limit for one member (`user_id`) or for every member (None), in their
        own tenant only. An operator's ceiling for the tenant still holds."""
        tenant = self._admin_tenant(surface, workspace_id)
        if user_id is None:
            await self.store.set_limit(tenant, "members", "", limit, by="admin")
        else:
            await self.store.set_limit(tenant, "user", f"{surface}:{user_id}", limit, by="admin")

    async def admin_grant(self, surface: str, workspace_id: str, user_id: str, images: int) -> None:
        await self.store.grant(self._admin_tenant(surface, workspace_id), f"{surface}:{user_id}", images)

    async def admin_reset(self, surface: str, workspace_id: str, user_id: str) -> None:
        await self.store.reset(self._admin_tenant(surface, workspace_id), f"{surface}:{user_id}")

    @classmethod
    def _admin_tenant(cls, surface: str, workspace_id: str) -> str:
        if not workspace_id:
            raise BadInput("Limits are managed inside a server or workspace, not in a direct message.")
        return cls.tenant(surface, workspace_id, "")

    # --- callbacks --------------------------------------------------------------------------------

    async def handle_callback(self, token: str, headers: Mapping[str, str], body: bytes) -> None:
        """A provider's callback for the job that owns `token`. Raises CallbackRejected (-> 4xx)."""
        job = await self.store.job_by_token(token)
        if job is None:
            raise CallbackRejected("unknown callback token", status=404)
        provider = self.providers.get(job.provider)
        if provider is None:
            raise CallbackRejected(f"provider {job.provider!r} is not running here", status=503)
        status = await provider.parse_callback(job.provider_job_id, headers, body)
        if job.state in TERMINAL:
            return  # a repeat or a late one: accepted, changes nothing
        if job.state is JobState.SUBMITTING and (
            status is None or status.state not in ("completed", "failed")
        ):
            # The job does not know its provider id (the submit's answer is lost, or not read yet):
            # the id this callback names is kept for the runner to confirm with the provider.
            named = provider.callback_job_id(body)
            if named is not None:
                await self.runner.note_candidate(job.id, named)
            status = None
        if status is not None:
            await self.store.record_callback(job.id, status_to_dict(status))
        await self.runner.news(job.id)


__all__ = ["Engine"]

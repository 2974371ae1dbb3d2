"""Admission and queries: validate a request, fetch its references, reserve quota and store the job,
then hand it to the worker (`bot.jobs.runner.JobRunner`), which runs it. The engine never runs a job
itself, never builds or enters the worker, and knows of it only `Worker`: the two calls of a hand-over.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import httpx

from bot import words
from bot.jobs.fair import FairShare
from bot.jobs.images import LinkSigner
from bot.jobs.kits import KitBook
from bot.jobs.media import (
    TYPED_FETCH_SECONDS,
    TYPED_PER_OWNER,
    Resolver,
    fetch_image,
    system_resolver,
    typed_client,
)
from bot.jobs.metrics import Metrics
from bot.jobs.preferences import CLEARED, Preferences, parse_policy
from bot.jobs.quota_policy import admin_may_set, check_images
from bot.jobs.retention import too_old
from bot.jobs.routing import BreakerState, Router
from bot.jobs.steps import kept_results
from bot.jobs.subjects import MB, SubjectBook
from bot.jobs.versions import Versions
from bot.logs import job_fields
from bot.model.config import Settings
from bot.model.errors import BadInput, QuotaExceeded
from bot.model.jobs import Job, JobState, OutputImage, tenant_of
from bot.model.requests import (
    MAX_REFERENCES,
    SEED_MAX,
    SET_MAX,
    ChatRequest,
    ImageRef,
    ImageRequest,
    Tier,
    check_project_tag,
)
from bot.providers.base import Provider
from bot.transport import Transport
from bot.words import channel_project_set, channel_project_shown
from storage.approvals import Approvals
from storage.costs import ChannelProjects
from storage.history import History, Recent
from storage.quota import Charge, QuotaStatus
from storage.replicas import replicas_for
from storage.retention import sweeps_for
from storage.rows import Lease
from storage.sets import PendingSets
from storage.store import Store

log = logging.getLogger(__name__)

# How long a set waits for its requester's confirmation.
PENDING_SET_SECONDS = 15 * 60

T = TypeVar("T")


class Worker(Protocol):
    """What admission needs of the worker: the lease a new job is stored with (None: any replica may
    take it up), and the start of a job stored with that lease."""

    def lease_for_new_job(self) -> Lease | None: ...
    def start(self, job_id: str, *, held: bool = False) -> None: ...


@dataclass(frozen=True)
class _Planned:
    """A request ready to be admitted: where it goes and what it costs."""

    chat: ChatRequest
    provider: Provider
    tier: Tier
    cost: float
    # The project it counts under ("": none), whose budget it must fit as well as its tenant's.
    project: str = ""

    @property
    def request(self) -> ImageRequest:
        return self.chat.request

    def charge(self, tenant: str) -> Charge:
        return Charge(
            f"{self.chat.surface}:{self.chat.user_id}", tenant, self.request.n, self.cost, self.project
        )


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: dict[str, Provider],
        http: Transport,
        *,
        router: Router,
        worker: Worker,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = system_resolver,
        typed_http: httpx.AsyncClient | None = None,
        typed_fetch_seconds: float = TYPED_FETCH_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        # URLs people typed are fetched apart from provider and platform traffic (bot.app gives this
        # engine a client of their own), and each must arrive within `typed_fetch_seconds`.
        self.typed_http = typed_http if typed_http is not None else typed_client()
        self.typed_fetch_seconds = typed_fetch_seconds
        self.typed_share = FairShare(TYPED_PER_OWNER)  # per person and per tenant, within that client's pool
        self.clock = clock
        self.resolver = resolver
        # Every running provider by name, in order of preference: a job is worked by the provider it
        # was admitted with (or that took it over when that one refused it). The mapping, the router
        # and its breakers are the worker's too: a provider it found failing is not chosen here.
        self.providers = providers
        self.router = router
        self.worker = worker
        self.preferences = Preferences(store)
        self.channel_projects = ChannelProjects(store)
        self.approvals = Approvals(store)  # reviewed channels and their results' approvals
        self.metrics = metrics
        self.versions = Versions(store)
        # Where people's browsers reach this server (links to the region editor): bot.app sets it to
        # HIDREAM_PUBLIC_URL, else the server's own address.
        self.site_url = settings.public_url
        self._link_signer: LinkSigner | None = None
        self._seen = replicas_for(store)  # platform events already handed to a replica
        self.subjects = SubjectBook(
            store,
            self._ingest,
            max_subjects=settings.max_subjects,
            max_bytes=settings.subject_storage_mb * MB,
        )
        self.kits = KitBook(store, self.subjects)

    @property
    def provider(self) -> Provider:
        """The provider new jobs prefer (the first of HIDREAM_PROVIDERS)."""
        return self.providers[self.router.order[0]]

    def provider_health(self) -> dict[str, BreakerState]:
        """Each configured provider's circuit breaker, in order of preference (for metrics and operators)."""
        return self.router.states()

    # --- admission --------------------------------------------------------------------------------

    async def submit(self, chat: ChatRequest, *, dedup_key: str | None = None) -> Job:
        """Admit a request: validate, fetch references, reserve quota and store the job; then run it.
        Raises UserFacingError (nothing spent) when the request cannot be admitted."""
        if dedup_key is not None:
            existing = await self.store.job_by_dedup(dedup_key)
            if existing is not None:
                return existing
        tenant = self.tenant(chat.surface, chat.workspace_id, chat.user_id)
        planned = await self._plan(chat, tenant)
        # The cheap look first: a request that cannot be admitted fetches and stores no bytes.
        await self._counted(self.store.check(planned.charge(tenant)))
        job = await self._job(planned, tenant, {})
        lease = self.worker.lease_for_new_job()
        stored = await self._counted(
            self.store.admit(job, workspace_key=tenant, dedup_key=dedup_key, lease=lease)
        )
        if stored.id == job.id:
            self._started(job, lease)
        return stored

    async def cost_of_set(self, chats: list[ChatRequest]) -> float:
        """What a set would cost, in dollars, on the providers it would go to (nothing is spent): shown
        when its requester is asked to confirm it. Raises UserFacingError for a request that cannot be."""
        total = 0.0
        for chat in chats:
            planned = await self._plan(chat, self.tenant(chat.surface, chat.workspace_id, chat.user_id))
            total += planned.cost
        return total

    async def submit_set(self, chats: list[ChatRequest], *, dedup_key: str | None = None) -> list[Job]:
        """Admit several requests of one person as one set, all or nothing: each is validated and its
        references fetched, then the set's images and dollars are reserved and every job stored in one
        transaction (storage: `admit_set`), before any provider is asked. Raises UserFacingError
        (nothing spent, nothing sent) when any of them, or the set as a whole, cannot be admitted."""
        if not chats:
            return []
        if len(chats) > SET_MAX:
            raise BadInput(words.set_too_large(len(chats), SET_MAX))
        keys = [f"{dedup_key}#{i}" for i in range(len(chats))] if dedup_key is not None else None
        if keys is not None and await self.store.job_by_dedup(keys[0]) is not None:
            found = [await self.store.job_by_dedup(k) for k in keys]
            return [j for j in found if j is not None]
        first = chats[0]
        tenant = self.tenant(first.surface, first.workspace_id, first.user_id)
        if any(self.tenant(c.surface, c.workspace_id, c.user_id) != tenant for c in chats):
            raise ValueError("a set is one person's, in one tenant")
        planned = [await self._plan(chat, tenant) for chat in chats]
        projects = {p.project for p in planned}
        whole = Charge(
            planned[0].charge(tenant).user_key,
            tenant,
            sum(p.request.n for p in planned),
            sum(p.cost for p in planned),
            # One project for the whole set, checked early here; the store checks each project's share.
            projects.pop() if len(projects) == 1 else "",
            jobs=len(planned),
        )
        await self._counted(self.store.check(whole))
        fetched: dict[str, str] = {}
        jobs = [await self._job(p, tenant, fetched) for p in planned]
        lease = self.worker.lease_for_new_job()
        stored = await self._counted(
            self.store.admit_set(jobs, workspace_key=tenant, dedup_keys=keys, lease=lease)
        )
        if stored and stored[0].id == jobs[0].id:
            for job in jobs:
                self._started(job, lease)
        return stored

    async def hold_set(self, chats: list[ChatRequest]) -> str:
        """Keep a set until its requester confirms it (nothing is spent); the id the confirmation names.
        Headers of reference fetches (a platform's bearer token) are never stored."""
        first = chats[0]
        payload = json.dumps(
            [c.model_dump(mode="json", exclude={"references": {"__all__": {"headers"}}}) for c in chats]
        )
        tenant = self.tenant(first.surface, first.workspace_id, first.user_id)
        held = PendingSets(self.store)
        return await held.hold(first.surface, tenant, first.user_id, payload, PENDING_SET_SECONDS)

    async def take_set(
        self, set_id: str, surface: str, workspace_id: str, user_id: str
    ) -> list[ChatRequest] | None:
        """A held set of this person's in this tenant, taken once (a second confirmation finds none);
        None when there is none, or it waited longer than PENDING_SET_SECONDS."""
        tenant = self.tenant(surface, workspace_id, user_id)
        payload = await PendingSets(self.store).take(set_id, surface, tenant, user_id, PENDING_SET_SECONDS)
        if payload is None:
            return None
        return [ChatRequest.model_validate(c) for c in json.loads(payload)]

    async def set_waits_for(self, set_id: str) -> tuple[str, str] | None:
        """The tenant and person a held set waits for, to tell anyone else it is not theirs."""
        owner = await PendingSets(self.store).owner(set_id)
        return None if owner is None else (owner[1], owner[2])

    async def _plan(self, chat: ChatRequest, tenant: str) -> _Planned:
        """A request as it will be admitted: defaults and subjects applied, its provider and tier
        chosen, its price. Raises UserFacingError (nothing looked up or spent)."""
        # Blocked phrases, personal defaults and the tenant's tier: before anything is looked up or spent.
        offered = tuple(dict.fromkeys(t for p in self.providers.values() for t in p.tiers()))
        edit = edits_one_image(chat)
        kitted = await self.kits.apply(chat, tenant)
        chat = await self.preferences.apply(kitted.chat, tenant, offered)
        chat = await self.subjects.resolve(chat, tenant)
        request = chat.request
        if edit and len(chat.references) == 1:
            # An edit keeps its image's shape unless it names another (`--ar`, `--size`).
            request = request.with_changes(keep_aspect=True)
        if len(chat.references) > MAX_REFERENCES:
            raise BadInput(f"{len(chat.references)} images were given; use at most {MAX_REFERENCES}.")
        preferred = await self.preferences.preferred_provider(tenant) if len(self.providers) > 1 else None
        provider, tier = self.router.choose(request, len(chat.references), preferred)
        if kitted.negative is not None:
            request = self._kit_negative(provider, request, tier, len(chat.references), kitted.negative)
        chat = chat.model_copy(update={"request": request})
        project = await self._project(chat, tenant)
        return _Planned(chat, provider, tier, provider.cost_usd(request, tier), project)

    def _kit_negative(
        self, provider: Provider, request: ImageRequest, tier: Tier, n_refs: int, negative: str
    ) -> ImageRequest:
        """A kit's negative prompt goes to a provider that takes one; elsewhere it is left out (a
        person's own `--no` is refused there instead)."""
        with_negative = request.with_changes(negative=negative)
        try:
            self.router.check(provider, with_negative, tier, n_refs)
        except BadInput:
            return request
        return with_negative

    async def _job(self, planned: _Planned, tenant: str, fetched: dict[str, str]) -> Job:
        """The job to store: its references fetched and held (`fetched`: those of a set already held,
        by URL, so a set fetches each once), its seed drawn when none was asked."""
        chat, request = planned.chat, planned.request
        person = f"{chat.surface}:{chat.user_id}"
        provider, tier, cost, project = planned.provider, planned.tier, planned.cost, planned.project
        media_ids = []
        for ref in chat.references:
            key = ref.media_id or ref.url
            if key not in fetched:
                fetched[key] = await self._ingest(ref, tenant, person)
            media_ids.append(fetched[key])
        if request.keep_aspect and len(media_ids) == 1:
            # The reference's shape is known now: sized by it, checked and priced again.
            request = request.with_changes(source=await self._size_of(media_ids[0]))
            self.router.check(provider, request, tier, len(media_ids))
            cost = provider.cost_usd(request, tier)
        seed = request.seed if request.seed is not None else random.randint(0, SEED_MAX)
        # The project is kept on the request too, so a reroll of this job counts under it as well.
        request = request.with_changes(seed=seed, model=tier, project=project or None)
        now = self.clock()
        return Job(
            id=uuid.uuid4().hex,
            surface=chat.surface,
            user_id=chat.user_id,
            workspace_id=chat.workspace_id,
            origin=await self._reviewed(chat, tenant),
            request=request,
            tier=tier,
            provider=provider.name,
            state=JobState.QUEUED,
            callback_token=secrets.token_urlsafe(32),
            created_at=now,
            deadline=now + self.settings.job_timeout_seconds,
            parent_job_id=chat.parent_job_id,
            reference_media=media_ids,
            seed=seed,
            cost_usd=cost,
            channel=chat.channel_id,
            project=project,
            home_channel=chat.home_channel_id if chat.home_channel_id != chat.channel_id else "",
        )

    def _started(self, job: Job, lease: Lease | None) -> None:
        log.info(
            "job %s admitted: %s, %d image(s), %s, to %s",
            job.id,
            job.mode,
            job.request.n,
            job.tier,
            job.provider,
            extra=job_fields(job),
        )
        if lease is not None:
            # Admitted with this replica's lease: its task needs no claim of its own.
            self.worker.start(job.id, held=True)

    async def _reviewed(self, chat: ChatRequest, tenant: str) -> dict[str, Any]:
        """The request's origin; in a reviewed channel, with who reviews it and where (its delivery
        then goes to its requester alone and to that queue: bot/jobs/delivery.py)."""
        channel = chat.home_channel_id or chat.channel_id  # a thread is reviewed as its channel is
        review = await self.approvals.reviewed(tenant, channel) if chat.workspace_id else None
        if review is None:
            return chat.origin
        return {**chat.origin, "review": {"reviewers": review.reviewers, "queue": review.queue}}

    async def _project(self, chat: ChatRequest, tenant: str) -> str:
        """The project a request counts under: the one it names (`--project`); else, for an edit of
        this tenant's result, its source's; else its channel's default; else none ("")."""
        if chat.request.project:
            return chat.request.project
        if chat.parent_job_id is not None:
            parent = await self.store.job(chat.parent_job_id)
            if parent is not None and parent.tenant == tenant and parent.project:
                return parent.project
        if chat.workspace_id:  # the console's one channel is ""; a DM has no admins to set one
            return await self.channel_projects.get(tenant, chat.channel_id) or ""
        return ""

    async def _counted(self, step: Awaitable[T]) -> T:
        """`step`, its quota or budget refusal counted for /metrics."""
        try:
            return await step
        except QuotaExceeded as exc:
            self.metrics.refused(exc)
            raise

    async def _size_of(self, media_id: str) -> tuple[int, int]:
        held = await self.store.media(media_id)
        if held is None:
            raise BadInput(too_old(self.settings.media_retention_days))
        return held.width, held.height

    async def _ingest(self, ref: ImageRef, tenant: str, person: str) -> str:
        if ref.media_id is not None:
            if not await sweeps_for(self.store).touch_media(ref.media_id):
                raise BadInput(too_old(self.settings.media_retention_days))
            return ref.media_id
        owners = (f"person:{person}", f"tenant:{tenant}") if ref.typed else ()
        async with self.typed_share.place(*owners):
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

    async def link_signer(self) -> LinkSigner:
        """Signs and checks links to this server's own pages (the region editor) with the media links'
        key, which every replica shares (read once: it never changes)."""
        if self._link_signer is None or self._link_signer.base_url != self.site_url.rstrip("/"):
            self._link_signer = LinkSigner(await self.store.secret("media-links"), self.site_url)
        return self._link_signer

    # --- queries for surfaces -----------------------------------------------------------------------

    async def job(self, job_id: str) -> Job | None:
        return await self.store.job(job_id)

    async def job_by_dedup(self, dedup_key: str) -> Job | None:
        """The job admitted under `dedup_key`, if any (unscoped: the key names its one sender)."""
        return await self.store.job_by_dedup(dedup_key)

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self.store.job_for_post(surface, message_key)

    async def job_by_prefix(self, surface: str, workspace_id: str, user_id: str, prefix: str) -> Job | None:
        """The newest job of one tenant whose id starts with `prefix`; surfaces reach it only through
        bot.usecases.access, which names the asker's tenant."""
        return await self.store.job_by_prefix(
            prefix, surface=surface, workspace_id=workspace_id, user_id=user_id
        )

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        """The job the thread's next instruction edits: its current version (`undo` moves it back),
        else, in a thread numbered before versions were kept, its newest delivered job."""
        current = await self.versions.current(surface, thread_key)
        return current or await self.store.latest_job_in_thread(surface, thread_key)

    async def result_images(self, job: Job) -> list[OutputImage]:
        """The job's images as held. Raises BadInput when retention has deleted any of them."""
        images = await kept_results(self.store, job)
        if len(images) < len(job.result_media):
            raise BadInput(too_old(self.settings.media_retention_days))
        return images

    def references_of(self, job: Job, index: int | None = None) -> list[ImageRef]:
        chosen = job.result_media if index is None else job.result_media[index : index + 1]
        return [ImageRef(url="", media_id=m) for m in chosen]

    async def recent_jobs(self, surface: str, workspace_id: str, user_id: str, limit: int) -> list[Recent]:
        """A person's newest jobs in one server or workspace, each with where its result stands."""
        return await History(self.store).recent(surface, workspace_id, user_id, limit)

    async def first_time(self, key: str) -> bool:
        """True the first time any replica is handed the platform event `key`; False for a resend."""
        return await self._seen.first_sight(key)

    async def mark_deleted(self, job: Job) -> None:
        await self.store.forget_posts(job.id)

    async def fail_workspace(self, surface: str, workspace_id: str, message: str) -> int:
        """Withdraw every unfinished job of a workspace that removed the bot: each failed in the store
        (its quota given back, as any failure's), as a client of a queue aborts a job; how many. The
        worker sees the failed state at the job's next step and stops it. Nobody is told: the
        workspace removed the bot, so there is nowhere left to say it."""
        failed = 0
        for job in await self.store.unfinished_jobs():
            if job.surface != surface or job.workspace_id != workspace_id:
                continue
            if await self.store.transition(job.id, JobState.FAILED, error=message):
                failed += 1
                self.metrics.finished(job, JobState.FAILED, self.clock())
                log.info("job %s failed: %s", job.id, message, extra=job_fields(job, state=JobState.FAILED))
        return failed

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
        own tenant only, and no higher than an admin may set there. An operator's ceiling for the
        tenant still holds."""
        tenant = self._admin_tenant(surface, workspace_id)
        check_images(limit)
        if limit is not None:
            admin_may_set(await self.store.quota("", tenant), limit)
        if user_id is None:
            await self.store.set_limit(tenant, "members", "", limit, by="admin")
        else:
            await self.store.set_limit(tenant, "user", f"{surface}:{user_id}", limit, by="admin")

    async def admin_grant(self, surface: str, workspace_id: str, user_id: str, images: int) -> None:
        check_images(images)
        tenant = self._admin_tenant(surface, workspace_id)
        await self.store.grant(tenant, f"{surface}:{user_id}", images, by="admin")

    async def admin_reset(self, surface: str, workspace_id: str, user_id: str) -> None:
        await self.store.reset(self._admin_tenant(surface, workspace_id), f"{surface}:{user_id}")

    async def admin_policy(self, surface: str, workspace_id: str, text: str, *, channel: str = "") -> str:
        """A tenant admin's `policy ...` (blocked phrases, NSFW handling, tier, provider, whether the
        audit export holds prompts; `channel`'s default project), in their own tenant only; the answer
        to show them privately."""
        tenant = self._admin_tenant(surface, workspace_id)
        command = parse_policy(text)
        if command.action == "project":
            value = (command.value or "").strip()
            project = None if value.lower() in CLEARED else check_project_tag(value, flag="policy project")
            await self.channel_projects.set(tenant, channel, project)
            return channel_project_set(project)
        answer = await self.preferences.admin(tenant, command, list(self.providers))
        if command.action == "show":
            answer += channel_project_shown(await self.channel_projects.get(tenant, channel))
        return answer

    async def preferred_provider(self, surface: str, workspace_id: str, user_id: str) -> str | None:
        """The provider the request's tenant prefers among those running here, if it chose one."""
        chosen = await self.preferences.preferred_provider(self.tenant(surface, workspace_id, user_id))
        return chosen if chosen in self.providers else None

    async def user_settings(self, surface: str, workspace_id: str, user_id: str, text: str) -> str:
        """A person's `settings ...` in the tenant they typed it in."""
        tenant = self.tenant(surface, workspace_id, user_id)
        return await self.preferences.settings(tenant, f"{surface}:{user_id}", text)

    async def user_defaults(self, surface: str, workspace_id: str, user_id: str) -> dict[str, str]:
        """A person's defaults in the tenant of `workspace_id` (flag name -> value as typed)."""
        tenant = self.tenant(surface, workspace_id, user_id)
        return await self.preferences.defaults(tenant, f"{surface}:{user_id}")

    async def screen_prompt(self, surface: str, workspace_id: str, user_id: str, prompt: str) -> None:
        """For a surface that shows the prompt before admission: refuse a blocked one first."""
        await self.preferences.screen(self.tenant(surface, workspace_id, user_id), prompt)

    async def private_results(self, surface: str, workspace_id: str, user_id: str, channel: str = "") -> bool:
        """Whether results go to the requester alone: their choice, or `channel` is reviewed."""
        tenant = self.tenant(surface, workspace_id, user_id)
        if workspace_id and await self.approvals.reviewed(tenant, channel) is not None:
            return True
        return await self.preferences.private(tenant, f"{surface}:{user_id}")

    async def reviewed(self, surface: str, workspace_id: str, channel: str) -> bool:
        """Whether `channel` is reviewed (bot/usecases/approvals.py): its results go to their requester alone."""
        if not workspace_id:
            return False
        return await self.approvals.reviewed(self.tenant(surface, workspace_id, ""), channel) is not None

    async def nsfw_policy(self, surface: str, workspace_id: str) -> str | None:
        """The tenant admins' NSFW choice; None: the operator's default holds."""
        if not workspace_id:
            return None
        return (await self.preferences.policy(self.tenant(surface, workspace_id, ""))).nsfw

    @classmethod
    def _admin_tenant(cls, surface: str, workspace_id: str) -> str:
        if not workspace_id:
            raise BadInput(
                "Limits and policy are managed inside a server or workspace, not in a direct message."
            )
        return cls.tenant(surface, workspace_id, "")


def edits_one_image(chat: ChatRequest) -> bool:
    """A request as typed (not a remake) that edits one image and names no size of its own (nor
    `keep_aspect:false`, which a surface's typed option can say)."""
    named = chat.request.explicit
    if named is None or len(chat.references) != 1 or {"ar", "size"} & named:
        return False
    return chat.request.keep_aspect or "keep-aspect" not in named


__all__ = ["Engine", "Worker"]

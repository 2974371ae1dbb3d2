"""A job's steps at its provider, for `JobRunner` (bot/jobs/runner.py), which runs them one at a time:

queued      -> submit (state `submitting` is written first); a refusal that took nothing moves the
               job to the next provider that can serve it (`bot.jobs.routing`, the store's `move_job`)
submitting  -> the answer was lost: wait for a callback that carries the result, or that names the
               request's id (confirmed and bound by `bot.jobs.recovery`)
running     -> wait for the callback, or poll with backoff; fetch the results and complete the job

The runner keeps what is shared by every step of a job (its slot, its wake-ups, its progress, its
failure and its delivery); each step reaches them through the job's own `JobContext`, and nothing else
of the runner. A provider's callback comes here too (`ProviderSteps.callback`), by way of the runner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from bot import words
from bot.jobs.credentials import ContentCredentials
from bot.jobs.images import LinkSigner, ResultGate, ResultSlot, to_data_uri
from bot.jobs.media import fetch_to_file
from bot.jobs.metrics import Metrics
from bot.jobs.recovery import SubmitRecord, SubmitRecords, final_status, recorded_status
from bot.jobs.regions import finish as finish_region
from bot.jobs.routing import Router
from bot.logs import job_fields
from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    MediaError,
    ProviderBusy,
    ProviderError,
    ProviderUnreachable,
    StoreUnavailable,
    SubmitOutcomeUnknown,
)
from bot.model.jobs import TERMINAL, Job, JobState, OutputImage
from bot.providers.base import LostAnswer, Provider, ProviderStatus, SubmitSpec, status_to_dict
from bot.transport import Transport
from storage import spool as spooling
from storage.posts import NewMedia
from storage.spool import spool_file
from storage.store import Store

log = logging.getLogger(__name__)

__all__ = ["CALLBACK_GRACE", "JobContext", "ProviderSteps", "kept_files", "kept_results", "overdue"]

T = TypeVar("T")

PROGRESS_TICK = 5.0
# While waiting for a callback, poll anyway after this long: callbacks can be lost.
CALLBACK_GRACE = 30.0
# Without callbacks, polling backs off (x1.5) up to this interval.
POLL_CAP = 15.0
RESULT_MAX_BYTES = 60 * 1024 * 1024


class Shows(Protocol):
    async def __call__(
        self, job: Job, stage: str, queue_position: int | None = None, *, milestone: bool = False
    ) -> bool: ...


@dataclass(frozen=True)
class JobContext:
    """What a job's steps need of the worker that runs them, bound to that one job (its slot, its
    wake-ups, its hand-over to delivery). The job as the step read it is passed where its fields
    matter (whose surface, since when)."""

    fail: Callable[[Job, str], Awaitable[None]]
    progress: Shows  # True when shown (the pacing policy allows it now)
    wait_for_wake: Callable[[float], Awaitable[bool]]  # True when a callback woke the job
    wake: Callable[[], None]
    take_slot: Callable[[], Awaitable[bool]]  # False when the job ended while it waited
    leave_slot: Callable[[], None]
    hand_over: Callable[[ResultSlot, list[OutputImage]], None]
    # The database could not be reached at the `attempt`-th try of a write that must not be lost:
    # said (once in a while) and waited out a little before the next try.
    store_away: Callable[[StoreUnavailable, int], Awaitable[None]]


def overdue(job: Job, now: float, timeout_seconds: float) -> str | None:
    """What the requester is told when the job's deadline has passed; None while it has not."""
    if now <= job.deadline:
        return None
    minutes = round(timeout_seconds / 60)
    return words.failed_took_too_long(minutes)


async def kept_files(store: Store, job: Job, slot: ResultSlot) -> list[OutputImage]:
    """`kept_results` as files to stream from (the store's own, or spooled copies the slot deletes
    when it is given back), never read whole."""
    images = []
    for media_id in job.result_media:
        m = await store.media_file(media_id)
        if m is not None:
            if m.spooled:
                slot.spooled.append(m.file)
            images.append(OutputImage(m.id, b"", m.content_type, m.width, m.height, m.nsfw, m.file))
    return images


async def kept_results(store: Store, job: Job) -> list[OutputImage]:
    """The job's result images as the store holds them (fewer once retention deleted some)."""
    images = []
    for media_id in job.result_media:
        m = await store.media(media_id)
        if m is not None:
            images.append(OutputImage(m.id, m.data, m.content_type, m.width, m.height, m.nsfw))
    return images


class ProviderSteps:
    """One step of a job at its provider; `records` keeps what is known of submits whose answer was
    lost. `signer` is set once the worker has read its key (before any job runs)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        http: Transport,
        *,
        router: Router,
        metrics: Metrics,
        results: ResultGate,
        clock: Callable[[], float],
        callback_grace: float,
        results_http: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        # Result files are downloaded over their own transport, whose addresses are checked
        # (`bot.jobs.media.result_address_check`); `http` itself only in tests that pass none.
        self.results_http = results_http or http
        self.router = router
        self.metrics = metrics
        self.results = results
        self.clock = clock
        self.callback_grace = callback_grace
        self.signer: LinkSigner | None = None
        # Set with `signer`: what signs each result's content credentials (bot/jobs/credentials.py).
        self.credentials: ContentCredentials | None = None
        self.records = SubmitRecords(store)
        # Jobs this process moved to `submitting` and has not yet asked the provider for: a database that
        # went away in between (even with the move's COMMIT answered by no one) leaves them `submitting`
        # with nothing sent, which only this process knows.
        self._unsent: set[str] = set()

    def forget(self, job_id: str) -> None:
        """The job's task here has ended."""
        self.records.forget(job_id)
        self._unsent.discard(job_id)

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.settings.public_url)

    async def step(self, provider: Provider, job: Job, ctx: JobContext) -> None:
        if job.state is JobState.QUEUED:
            await self._submit(provider, job, ctx)
        elif job.state is JobState.SUBMITTING:
            await self._await_unknown(provider, job, ctx)
        else:
            await self._await_result(provider, job, ctx)

    async def callback(self, provider: Provider, job: Job, headers: Mapping[str, str], body: bytes) -> bool:
        """A provider's callback for `job`, checked (raises CallbackRejected) and stored for the job's
        task; False when it changes nothing (a repeat or a late one, accepted all the same)."""
        status = await provider.parse_callback(job.provider_job_id, headers, body)
        if job.state in TERMINAL:
            return False
        if job.state is JobState.SUBMITTING:
            # The job does not know its provider id (the submit's answer is lost, or not read yet), so
            # even a signed completion may be for a request this bot never made (its signature says
            # only that the provider sent it): the id it names is kept for the job's task to confirm
            # with the provider (`bot.jobs.recovery`), and the result is read from there. A callback
            # that arrives before the submit's answer is read wakes the job, which then reads its status.
            named = provider.callback_job_id(body)
            if named is not None:
                final = status if status is not None and status.state in ("completed", "failed") else None
                await self.records.note(job.id, named, status_to_dict(final) if final else None)
            status = None
        if status is not None:
            await self.store.record_callback(job.id, status_to_dict(status))
        return True

    # --- submit ----------------------------------------------------------------------------------

    async def _submit(self, provider: Provider, job: Job, ctx: JobContext) -> None:
        # Read before the move: from `submitting` on, a step that fails before the provider is asked
        # would leave the job looking as if its request might have been sent.
        position = await self.store.queue_position(job)
        self._unsent.add(job.id)
        if not await self.store.transition(job.id, JobState.SUBMITTING):
            self._unsent.discard(job.id)
            return
        await ctx.progress(job, "queued", position, milestone=True)
        await self._send(provider, job, ctx, [])

    async def _send(
        self,
        provider: Provider,
        job: Job,
        ctx: JobContext,
        started: list[str],
        tried: frozenset[str] = frozenset(),
    ) -> None:
        """Ask the provider for the job's requests after those `started`; then the job is running.
        `tried`: the providers that refused this job already (it never goes back to one)."""
        # Nothing is sent yet, but the job is `submitting`: a database away now is waited out (`_stored`).
        try:
            urls = await self._stored(ctx, lambda: self._reference_urls(job))
        except BadInput as exc:  # a reference that could not be read or is no longer held
            await self._stored(ctx, partial(ctx.fail, job, exc.user_message))
            return
        try:
            spec = self._submit_spec(job, urls, started)
            self._unsent.discard(job.id)  # from here on the request may be out
            provider_job_id = await provider.submit(spec)
        except SubmitOutcomeUnknown as exc:
            known = exc.started if isinstance(exc, LostAnswer) else started
            self.metrics.provider_error(provider.name, exc)
            log.warning("job %s: submit outcome unknown (%s); not resending", job.id, exc.detail)
            await self._stored(ctx, partial(self.records.lost, job.id, known, exc.user_message))
            return
        except ProviderError as exc:
            self.metrics.provider_error(provider.name, exc)
            log.warning("job %s: provider refused: %s", job.id, exc)
            self.router.record(provider.name, exc)
            if not await self._fail_over(provider, job, ctx, exc, started, tried | {provider.name}):
                await self._stored(ctx, partial(ctx.fail, job, exc.user_message))
            return
        self.router.record(provider.name, None)
        # The id just answered is known only here: a database away now must not lose it (the job would
        # wait for a callback that may have come and gone), so the write waits for it (`_stored`).
        await self._stored(ctx, lambda: self._running(job, provider_job_id))
        log.info(
            "job %s submitted to %s as %s",
            *(job.id, provider.name, provider_job_id),
            extra=job_fields(job, state=JobState.RUNNING),
        )

    @staticmethod
    async def _stored(ctx: JobContext, step: Callable[[], Awaitable[T]]) -> T:
        """`step` (reads and writes of the store), tried until the database answers. For the moments
        between asking the provider and recording what it said (or that it was not asked): what is
        known then is known only here, and a step tried again from `submitting` would take the
        request as perhaps sent."""
        attempt = 0
        while True:
            try:
                return await step()
            except StoreUnavailable as exc:
                await ctx.store_away(exc, attempt)
                attempt += 1

    async def _running(self, job: Job, provider_job_id: str) -> None:
        record = SubmitRecord.read(await self.store.callback_status(job.id))
        await self.store.transition(job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None)
        early = record.early_for(provider_job_id)
        if early is not None:  # its completion came before its answer, naming the id just answered
            await self.store.record_callback(job.id, status_to_dict(early))

    async def _fail_over(
        self,
        provider: Provider,
        job: Job,
        ctx: JobContext,
        exc: ProviderError,
        started: list[str],
        tried: frozenset[str],
    ) -> bool:
        """Hand the job to the next provider that can serve it, when `exc` says nothing was taken;
        True when another provider was asked (whatever it answered)."""
        other = self.router.takes_over(job, exc, started, tried)
        if other is None:
            return False
        cost = other.cost_usd(job.request, job.tier)
        # The store checks the budget under the tenant's lock: a refusal and a job that moved on meanwhile
        # both leave it where it is.
        moving = partial(
            self.store.move_job, job.id, from_provider=provider.name, to_provider=other.name, cost_usd=cost
        )
        if not await self._stored(ctx, moving):
            log.info(
                "job %s: %s cannot take it over (over the budget, or the job moved on)", job.id, other.name
            )
            return False
        log.info(
            "job %s: %s refused it (%s); %s takes it over", job.id, provider.name, exc.detail, other.name
        )
        moved = await self._stored(ctx, lambda: self.store.job(job.id))
        if moved is None:
            return False
        await self._send(other, moved, ctx, [], tried)
        return True

    def _submit_spec(self, job: Job, reference_urls: list[str], started: list[str]) -> SubmitSpec:
        callback = (
            f"{self.settings.public_url}/webhooks/{job.callback_token}" if self.callbacks_enabled else None
        )
        return SubmitSpec(job.id, job.request, job.tier, reference_urls, callback, tuple(started))

    async def _reference_urls(self, job: Job) -> list[str]:
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

    # --- wait ------------------------------------------------------------------------------------

    async def _await_unknown(self, provider: Provider, job: Job, ctx: JobContext) -> None:
        """We cannot ask the provider about a request whose id we never read. Only a callback can
        save it: one that carries the result, or one that names the id (then confirmed and bound)."""
        cached = await self.store.callback_status(job.id)
        final = final_status(cached)
        if final is not None:
            await self._settle_status(provider, job, ctx, final)
            return
        if job.id in self._unsent:
            # Moved here by this process, which never asked the provider: nothing is in doubt.
            await self._send(provider, job, ctx, [])
            return
        if not self.callbacks_enabled:
            await ctx.fail(
                job,
                job.error or words.FAILED_NOT_RESENT,
            )
            return
        ids = await self.records.recover(provider, job, SubmitRecord.read(cached))
        if ids is not None:
            await self._bind(provider, job, ctx, ids)
            return
        await ctx.progress(job, "running")
        # Waiting for a callback needs nothing of the provider: the slot goes to a job that does,
        # and this one takes its turn again once it has something to do (or to look at again).
        ctx.leave_slot()
        await ctx.wait_for_wake(min(PROGRESS_TICK, job.deadline - self.clock()))
        await ctx.take_slot()

    async def _bind(self, provider: Provider, job: Job, ctx: JobContext, ids: list[str]) -> None:
        """The job's requests so far are `ids`: send the rest, or go on as `running` with them."""
        if len(ids) < provider.requests_for(job.request):
            log.info("job %s: %s confirmed %s; sending the rest", job.id, provider.name, ids[-1])
            await self.records.sending(job.id, ids)
            await self._send(provider, job, ctx, ids)
            return
        provider_job_id = provider.join_ids(ids)
        record = SubmitRecord.read(await self.store.callback_status(job.id))
        if await self.store.transition(job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None):
            log.info("job %s: recovered from its callback as %s", job.id, provider_job_id)
            early = record.early_for(provider_job_id)  # the confirmed id's own completion, if it came
            if early is not None:
                await self.store.record_callback(job.id, status_to_dict(early))
            ctx.wake()  # read its status now: the callback that named it has come already

    async def _await_result(self, provider: Provider, job: Job, ctx: JobContext) -> None:
        interval = provider.poll_interval
        cap = self.callback_grace if self.callbacks_enabled else POLL_CAP
        next_poll = self.clock() + (self.callback_grace if self.callbacks_enabled else interval)
        while True:
            status = recorded_status(await self.store.callback_status(job.id))
            if status is None and self.clock() >= next_poll:
                status = await self._poll(provider, job)
                interval = min(interval * 1.5, cap)
                next_poll = self.clock() + interval
            if status is not None and status.state in ("completed", "failed"):
                await self._settle_status(provider, job, ctx, status)
                return
            if status is not None:
                stage = "queued" if status.state == "queued" else "running"
                await ctx.progress(job, stage, status.queue_position)
            else:
                await ctx.progress(job, "running")
            if overdue(job, self.clock(), self.settings.job_timeout_seconds) is not None:
                return  # the loop in _steps fails it
            timeout = min(next_poll - self.clock(), PROGRESS_TICK, job.deadline - self.clock() + 0.01)
            if await ctx.wait_for_wake(timeout):
                next_poll = self.clock()  # a callback arrived: read it, or poll now if it was only a hint

    async def _poll(self, provider: Provider, job: Job) -> ProviderStatus | None:
        assert job.provider_job_id is not None
        try:
            return await provider.status(job.provider_job_id)
        except (ProviderBusy, ProviderUnreachable) as exc:
            self.metrics.provider_error(provider.name, exc)
            log.warning("job %s: status check failed, will retry: %s", job.id, exc)
            return None
        except ProviderError as exc:
            self.metrics.provider_error(provider.name, exc)
            return ProviderStatus(state="failed", error=exc.user_message)

    async def _settle_status(
        self, provider: Provider, job: Job, ctx: JobContext, status: ProviderStatus
    ) -> None:
        if status.state == "failed":
            self.metrics.provider_error(provider.name, "GenerationFailed")
            await ctx.fail(job, status.error or words.failed_at(provider.name))
            return
        if not status.images:
            await ctx.fail(job, words.failed_no_image(provider.name))
            return
        spooled: list[Path] = []  # the results' files until a slot takes them in its care
        try:
            results = await self._download(job, status, spooled)
            if not isinstance(results, str) and job.request.region is not None:
                # A region edit: its crop blended back into the image it edits, before anything signs it.
                results = await finish_region(self.store, job, results)
            if isinstance(results, str):
                await ctx.fail(job, results)
                return
            if self.credentials is not None:  # signed before they are kept: every later reader gets them
                results = await self.credentials.sign_results(job, provider.name, results)
            # The results are kept and posted under one of the bot's slots for uploads (`ResultGate`),
            # taken once their bytes are here: a slow file host holds its own job, never a slot others'
            # deliveries wait for. The slot and the images go to the delivery that follows (`hand_over`),
            # which posts them from their files instead of reading them back from the store.
            slot = await self.results.take()
            slot.spooled, spooled = spooled, []
            await self._keep(job, ctx, results, slot)
        finally:
            for path in spooled:
                path.unlink(missing_ok=True)

    async def _keep(self, job: Job, ctx: JobContext, results: list[NewMedia], slot: ResultSlot) -> None:
        """Keep the results and hand them, with `slot`, to the delivery (or give the slot back)."""
        taken: ResultSlot | None = slot
        try:
            # The images and the move to `completed` in one transaction: none is kept for a job
            # that was failed meanwhile, and the job never names an image not kept.
            ids = await self.store.complete(job.id, results)
            if ids is not None:
                placed = self.store.media_bytes.placed
                kept = [
                    OutputImage(
                        i,
                        r.data,
                        r.content_type,
                        r.width,
                        r.height,
                        r.nsfw,
                        None if r.file is None else placed(i, r.file),
                    )
                    for i, r in zip(ids, results, strict=True)
                ]
                ctx.hand_over(slot, kept)
                taken = None
        finally:
            if taken is not None:
                taken.release()

    async def _download(self, job: Job, status: ProviderStatus, spooled: list[Path]) -> list[NewMedia] | str:
        """The job's result images, each streamed into a spooled file (added to `spooled`, which the
        caller deletes), or what its requester is told when one could not be had, or took longer than
        HIDREAM_RESULT_FETCH_SECONDS or the job's deadline allow (a host trickling bytes under the size
        cap could go on for hours). Downloads wait for no result slot (see `_settle_status`): how many
        run at once is bounded by the jobs being worked (HIDREAM_MAX_ACTIVE_JOBS)."""
        results = []
        folder = self.store.media_bytes.spool_dir()
        for image in status.images:
            limit = min(self.settings.result_fetch_seconds, job.deadline - self.clock())
            file = await asyncio.to_thread(spool_file, folder)
            spooled.append(file)
            try:
                async with asyncio.timeout(max(0.0, limit)):
                    # The provider's own result: its type and size from its header, not a full decode.
                    fetched = await fetch_to_file(
                        self.results_http,
                        image.url,
                        file,
                        max_bytes=RESULT_MAX_BYTES,
                        image_types_only=True,
                        write=spooling.write_chunk,  # a full disk: StoreUnavailable, waited out
                    )
            except TimeoutError:
                log.warning("job %s: result download took longer than %.0f s; given up", job.id, limit)
                return words.FAILED_SLOW_DOWNLOAD
            except MediaError as exc:
                log.warning("job %s: result could not be fetched: %s", job.id, exc)
                return words.FAILED_DOWNLOAD
            results.append(
                NewMedia(b"", fetched.content_type, fetched.width, fetched.height, image.nsfw, file=file)
            )
        return results

"""A job's steps at its provider, for `JobRunner` (bot/jobs/runner.py), which runs them one at a time:

queued      -> submit (state `submitting` is written first); a refusal that took nothing moves the
               job to the next provider that can serve it (`bot.jobs.routing`, storage/failover.py)
submitting  -> the answer was lost: wait for a callback that carries the result, or that names the
               request's id (confirmed and bound by `bot.jobs.recovery`)
running     -> wait for the callback, or poll with backoff; fetch the results and complete the job

The runner keeps what is shared by every step of a job (its slot, its wake-ups, its progress and its
deadline); these steps reach them through `StepHost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import httpx

from bot.jobs.media import LinkSigner, ResultGate, ResultSlot, fetch_image, to_data_uri
from bot.jobs.metrics import Metrics
from bot.jobs.recovery import SubmitRecord, SubmitRecords, final_status, recorded_status
from bot.jobs.routing import Router
from bot.logs import job_fields
from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    MediaError,
    ProviderBusy,
    ProviderError,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
)
from bot.model.jobs import Job, JobState, OutputImage
from bot.providers.base import LostAnswer, Provider, ProviderStatus, SubmitSpec
from storage.base import NewMedia, Store
from storage.failover import move_job

log = logging.getLogger(__name__)

__all__ = ["CALLBACK_GRACE", "ProviderSteps", "StepHost"]

PROGRESS_TICK = 5.0
# While waiting for a callback, poll anyway after this long: callbacks can be lost.
CALLBACK_GRACE = 30.0
# Without callbacks, polling backs off (x1.5) up to this interval.
POLL_CAP = 15.0
RESULT_MAX_BYTES = 60 * 1024 * 1024


class StepHost(Protocol):
    """What the steps need of the runner that runs them."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def router(self) -> Router: ...
    @property
    def http(self) -> httpx.AsyncClient: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def callback_grace(self) -> float: ...
    @property
    def signer(self) -> LinkSigner | None: ...
    @property
    def results(self) -> ResultGate: ...
    @property
    def callbacks_enabled(self) -> bool: ...

    def wake(self, job_id: str) -> None: ...

    def hand_over(self, job_id: str, slot: ResultSlot, images: list[OutputImage]) -> None: ...

    async def fail(self, job: Job, message: str) -> None: ...
    async def progress(
        self, job: Job, stage: str, queue_position: int | None = None, *, milestone: bool = False
    ) -> bool: ...
    async def wait_for_wake(self, job_id: str, seconds: float) -> bool: ...
    async def take_slot(self, job_id: str) -> bool: ...
    def leave_slot(self, job_id: str) -> None: ...
    def timed_out(self, job: Job) -> str | None: ...


class ProviderSteps:
    """One step of a job at its provider; `records` keeps what is known of submits whose answer was lost."""

    def __init__(self, host: StepHost, store: Store) -> None:
        self.host = host
        self.records = SubmitRecords(store)

    async def step(self, provider: Provider, job: Job) -> None:
        if job.state is JobState.QUEUED:
            await self._submit(provider, job)
        elif job.state is JobState.SUBMITTING:
            await self._await_unknown(provider, job)
        else:
            await self._await_result(provider, job)

    # --- submit ----------------------------------------------------------------------------------

    async def _submit(self, provider: Provider, job: Job) -> None:
        if not await self.host.store.transition(job.id, JobState.SUBMITTING):
            return
        await self.host.progress(job, "queued", await self.host.store.queue_position(job), milestone=True)
        await self._send(provider, job, [])

    async def _send(
        self, provider: Provider, job: Job, started: list[str], tried: frozenset[str] = frozenset()
    ) -> None:
        """Ask the provider for the job's requests after those `started`; then the job is running.
        `tried`: the providers that refused this job already (it never goes back to one)."""
        try:
            spec = self._submit_spec(job, await self._reference_urls(job), started)
            provider_job_id = await provider.submit(spec)
        except SubmitOutcomeUnknown as exc:
            known = exc.started if isinstance(exc, LostAnswer) else started
            self.host.metrics.provider_error(provider.name, exc)
            log.warning("job %s: submit outcome unknown (%s); not resending", job.id, exc.detail)
            await self.records.lost(job.id, known, exc.user_message)
            return
        except ProviderError as exc:
            self.host.metrics.provider_error(provider.name, exc)
            log.warning("job %s: provider refused: %s", job.id, exc)
            self.host.router.record(provider.name, exc)
            if not await self._fail_over(provider, job, exc, started, tried | {provider.name}):
                await self.host.fail(job, exc.user_message)
            return
        except BadInput as exc:  # a reference that could not be read or is no longer held
            await self.host.fail(job, exc.user_message)
            return
        self.host.router.record(provider.name, None)
        await self.host.store.transition(
            job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None
        )
        log.info(
            "job %s submitted to %s as %s",
            *(job.id, provider.name, provider_job_id),
            extra=job_fields(job, state=JobState.RUNNING),
        )

    async def _fail_over(
        self, provider: Provider, job: Job, exc: ProviderError, started: list[str], tried: frozenset[str]
    ) -> bool:
        """Hand the job to the next provider that can serve it, when `exc` says nothing was taken;
        True when another provider was asked (whatever it answered)."""
        other = self.host.router.takes_over(job, exc, started, tried)
        if other is None:
            return False
        cost = other.cost_usd(job.request, job.tier)
        if cost > job.cost_usd and not await self._budget_allows(job, cost - job.cost_usd):
            log.info(
                "job %s: %s would take it over, but it costs more than the budget has left",
                job.id,
                other.name,
            )
            return False
        if not await move_job(
            self.host.store, job.id, from_provider=provider.name, to_provider=other.name, cost_usd=cost
        ):
            return False
        log.info(
            "job %s: %s refused it (%s); %s takes it over", job.id, provider.name, exc.detail, other.name
        )
        moved = await self.host.store.job(job.id)
        if moved is None:
            return False
        await self._send(other, moved, [], tried)
        return True

    async def _budget_allows(self, job: Job, more_usd: float) -> bool:
        """Whether the tenant's monthly budget (if any) still holds `more_usd` on top of what is spent
        and reserved (this job's own reservation included)."""
        status = await self.host.store.quota(job.user_key, job.tenant)
        return status.budget_usd is None or status.month_spent_usd + more_usd <= status.budget_usd + 1e-9

    def _submit_spec(self, job: Job, reference_urls: list[str], started: list[str]) -> SubmitSpec:
        callback = (
            f"{self.host.settings.public_url}/webhooks/{job.callback_token}"
            if self.host.callbacks_enabled
            else None
        )
        return SubmitSpec(job.id, job.request, job.tier, reference_urls, callback, tuple(started))

    async def _reference_urls(self, job: Job) -> list[str]:
        urls = []
        for media_id in job.reference_media:
            if self.host.callbacks_enabled and self.host.signer is not None:
                ttl = max(600.0, job.deadline - self.host.clock())
                urls.append(self.host.signer.link(media_id, now=self.host.clock(), ttl=ttl))
            else:
                m = await self.host.store.media(media_id)
                if m is None:
                    raise BadInput("A reference image is no longer held by the bot; attach it again.")
                urls.append(to_data_uri(m.data, m.content_type))
        return urls

    # --- wait ------------------------------------------------------------------------------------

    async def _await_unknown(self, provider: Provider, job: Job) -> None:
        """We cannot ask the provider about a request whose id we never read. Only a callback can
        save it: one that carries the result, or one that names the id (then confirmed and bound)."""
        cached = await self.host.store.callback_status(job.id)
        final = final_status(cached)
        if final is not None:
            await self._settle_status(provider, job, final)
            return
        if not self.host.callbacks_enabled:
            await self.host.fail(
                job,
                job.error
                or "The bot restarted while sending this request, so it was not sent again; your quota was given back.",
            )
            return
        ids = await self.records.recover(provider, job, SubmitRecord.read(cached))
        if ids is not None:
            await self._bind(provider, job, ids)
            return
        await self.host.progress(job, "running")
        # Waiting for a callback needs nothing of the provider: the slot goes to a job that does,
        # and this one takes its turn again once it has something to do (or to look at again).
        self.host.leave_slot(job.id)
        await self.host.wait_for_wake(job.id, min(PROGRESS_TICK, job.deadline - self.host.clock()))
        await self.host.take_slot(job.id)

    async def _bind(self, provider: Provider, job: Job, ids: list[str]) -> None:
        """The job's requests so far are `ids`: send the rest, or go on as `running` with them."""
        if len(ids) < provider.requests_for(job.request):
            log.info("job %s: %s confirmed %s; sending the rest", job.id, provider.name, ids[-1])
            await self.records.sending(job.id, ids)
            await self._send(provider, job, ids)
            return
        provider_job_id = provider.join_ids(ids)
        if await self.host.store.transition(
            job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None
        ):
            log.info("job %s: recovered from its callback as %s", job.id, provider_job_id)
            self.host.wake(job.id)  # read its status now: the callback that named it has come already

    async def _await_result(self, provider: Provider, job: Job) -> None:
        interval = provider.poll_interval
        cap = self.host.callback_grace if self.host.callbacks_enabled else POLL_CAP
        next_poll = self.host.clock() + (
            self.host.callback_grace if self.host.callbacks_enabled else interval
        )
        while True:
            status = recorded_status(await self.host.store.callback_status(job.id))
            if status is None and self.host.clock() >= next_poll:
                status = await self._poll(provider, job)
                interval = min(interval * 1.5, cap)
                next_poll = self.host.clock() + interval
            if status is not None and status.state in ("completed", "failed"):
                await self._settle_status(provider, job, status)
                return
            if status is not None:
                stage = "queued" if status.state == "queued" else "running"
                await self.host.progress(job, stage, status.queue_position)
            else:
                await self.host.progress(job, "running")
            if self.host.timed_out(job) is not None:
                return  # the loop in _steps fails it
            timeout = min(
                next_poll - self.host.clock(), PROGRESS_TICK, job.deadline - self.host.clock() + 0.01
            )
            if await self.host.wait_for_wake(job.id, timeout):
                next_poll = (
                    self.host.clock()
                )  # a callback arrived: read it, or poll now if it was only a hint

    async def _poll(self, provider: Provider, job: Job) -> ProviderStatus | None:
        assert job.provider_job_id is not None
        try:
            return await provider.status(job.provider_job_id)
        except (ProviderBusy, ProviderUnreachable) as exc:
            self.host.metrics.provider_error(provider.name, exc)
            log.warning("job %s: status check failed, will retry: %s", job.id, exc)
            return None
        except ProviderError as exc:
            self.host.metrics.provider_error(provider.name, exc)
            return ProviderStatus(state="failed", error=exc.user_message)

    async def _settle_status(self, provider: Provider, job: Job, status: ProviderStatus) -> None:
        if status.state == "failed":
            self.host.metrics.provider_error(provider.name, "GenerationFailed")
            await self.host.fail(job, status.error or f"{provider.name} could not make the image.")
            return
        if not status.images:
            await self.host.fail(
                job, f"{provider.name} finished but sent no image; your quota was given back."
            )
            return
        # The results are in memory from their download until they are posted, under one of the bot's
        # few slots for that (`ResultGate`), so a burst of results does not fill memory. The slot and
        # the images go to the delivery that follows (`hand_over`), which posts them as they are
        # instead of reading them back from the store.
        slot: ResultSlot | None = await self.host.results.take()
        try:
            results = []
            for image in status.images:
                try:
                    # The provider's own result: its type and size from its header, not a full decode.
                    fetched = await fetch_image(
                        self.host.http, image.url, typed=False, max_bytes=RESULT_MAX_BYTES, decode=False
                    )
                except MediaError as exc:
                    log.warning("job %s: result could not be fetched: %s", job.id, exc)
                    break
                results.append(
                    NewMedia(fetched.data, fetched.content_type, fetched.width, fetched.height, image.nsfw)
                )
                del fetched
            else:
                # The images and the move to `completed` in one transaction: none is kept for a job
                # that was failed meanwhile, and the job never names an image not kept.
                ids = await self.host.store.complete(job.id, results)
                if ids is not None and slot is not None:
                    kept = [
                        OutputImage(i, r.data, r.content_type, r.width, r.height, r.nsfw)
                        for i, r in zip(ids, results, strict=True)
                    ]
                    self.host.hand_over(job.id, slot, kept)
                    slot = None
                return
            results.clear()  # what was fetched before the failure is not held past the slot
        finally:
            if slot is not None:
                slot.release()
        await self.host.fail(job, "The finished image could not be downloaded from the provider.")

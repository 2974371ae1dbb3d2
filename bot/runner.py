"""`JobRunner` owns running jobs: one task per job, wake-ups, progress, deadlines and delivery.

Each step starts from the state the store holds, so a job picked up after a crash continues where
it was: nothing in memory is needed to finish it.

queued      -> submit to the provider (state `submitting` is written first); a refusal that took
               nothing (402, 429/5xx, unreachable) moves the job to the next provider (`bot.routing`)
submitting  -> the request may have been sent but its answer was lost: wait for the provider's
               callback; the id it names is bound to the job once a status read confirms it
               (`bot.recovery`), then the job goes on as `running`
running     -> wait for the callback, or poll with backoff; fetch the results
completed   -> deliver through the surface that asked
delivering  -> deliver again (surfaces deliver idempotently per job id), then settle

A replica works only the jobs it holds a lease on (`storage.replicas`): it claims a job before its
first step, renews its leases while it works, and looks every third of a lease for jobs nobody holds
(new, released at a clean stop, or lapsed because their replica died). News of a job that reaches
another replica (a provider's callback) is sent to its owner through the store.

At most `HIDREAM_MAX_ACTIVE_JOBS` jobs are worked at once (resumed ones too): the others wait for a
slot, still `queued` in the store, and their requesters are told their place in the line. Progress
edits follow the policy of `bot.pacing`: one job's at most every 2 s, fewer the more jobs there are,
and never more than a fixed number a second in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import httpx

from bot.config import Settings
from bot.errors import (
    BadInput,
    MediaError,
    ProviderBusy,
    ProviderError,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
)
from bot.hidream.base import LostAnswer, Provider, ProviderStatus, Sleep, SubmitSpec
from bot.jobs import TERMINAL, Job, JobState, OutputImage, Progress, Surface
from bot.logs import bind_job, job_fields
from bot.media import LinkSigner, fetch_image, to_data_uri
from bot.metrics import Metrics
from bot.pacing import PROGRESS_EVERY, ProgressGate, Slots, wait_for_turn
from bot.recovery import SubmitRecord, SubmitRecords, final_status, recorded_status
from bot.routing import Router
from bot.versions import Versions
from storage.base import NewMedia, Store
from storage.failover import move_job
from storage.replicas import Replicas, replicas_for
from storage.schema import Lease

log = logging.getLogger(__name__)

__all__ = ["CALLBACK_GRACE", "PROGRESS_EVERY", "JobRunner"]

PROGRESS_TICK = 5.0
# While waiting for a callback, poll anyway after this long: callbacks can be lost.
CALLBACK_GRACE = 30.0
# Without callbacks, polling backs off (x1.5) up to this interval.
POLL_CAP = 15.0
RESULT_MAX_BYTES = 60 * 1024 * 1024
DELIVERY_ATTEMPTS = 3
SORRY = "Something went wrong inside the bot; your quota was given back."
# The states in which a job's next step is the provider's, and its deadline applies.
_AT_PROVIDER = frozenset({JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING})


class JobRunner:
    """Runs every unfinished job of this process to its end. Enter it to start; leaving cancels the
    tasks (their jobs resume on the next start)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: Mapping[str, Provider],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        callback_grace: float = CALLBACK_GRACE,
        router: Router | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.versions = Versions(store)
        self.providers = providers
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.callback_grace = callback_grace
        # Which provider takes a job over when its own refuses the submit; the breakers' counts.
        self.router = router or Router(
            providers, list(providers), settings.model, lambda: not self.callbacks_enabled
        )
        self.surfaces: dict[str, Surface] = {}
        self.signer: LinkSigner | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakers: dict[str, asyncio.Event] = {}
        self._slots = Slots(settings.max_active_jobs)
        self.metrics = metrics or Metrics(store)
        self.metrics.watch(lambda: self._slots.active)
        self._gate = ProgressGate(clock)
        self._records = SubmitRecords(store)
        self.replicas: Replicas = replicas_for(store)
        self.lease_seconds = settings.lease_seconds
        self._held: set[str] = set()  # jobs whose lease this replica holds
        self._leases: asyncio.Task[None] | None = None
        self._look = asyncio.Event()  # look for free jobs now, not at the next round
        self._more = False  # the last look found as many free jobs as it could take

    async def __aenter__(self) -> JobRunner:
        secret = await self.store.secret("media-links")
        self.signer = LinkSigner(secret, self.settings.public_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._leases is not None:
            self._leases.cancel()
            await asyncio.gather(self._leases, return_exceptions=True)
        held = sorted(self._held)  # before the tasks end: each lets go of its own as it ends
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            # A clean stop lets go of its jobs: another replica, or this one restarted, goes on at once.
            await self.replicas.release(held)
        except Exception:
            log.warning("could not release %d lease(s); they lapse on their own", len(held), exc_info=True)
        await self.replicas.close()

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.settings.public_url)

    # --- what the engine calls -------------------------------------------------------------------

    def add_surface(self, surface: Surface) -> None:
        self.surfaces[surface.name] = surface

    def start(self, job_id: str, *, held: bool = False) -> None:
        """Run the job in its own task, unless this process already runs it. The task waits for a
        slot first when `HIDREAM_MAX_ACTIVE_JOBS` jobs are being worked. `held`: this replica holds
        the job's lease already (it admitted the job with `lease_for_new_job`, or just claimed it),
        so the task needs no claim of its own; any other job is claimed first."""
        if job_id in self._tasks:
            return
        if held:
            self._held.add(job_id)  # renewed from now on, like any claimed job
        task = asyncio.create_task(self._run(job_id, claimed=held), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._forget(job_id))

    def wake(self, job_id: str) -> None:
        """Something new is stored for the job (a callback): look at it now, not at the next poll."""
        if job_id in self._tasks:
            self._waker(job_id).set()

    def lease_for_new_job(self) -> Lease | None:
        """A job admitted here is this replica's from its first row, unless this replica's line is
        full while others share the database: then it is stored for any of them to take up (this
        one too, once it has room), rather than wait here while another replica idles."""
        if self.replicas.shared and len(self._tasks) >= 2 * self.settings.max_active_jobs:
            self._more = True  # look for free jobs again as soon as one of this replica's ends
            return None
        return Lease(self.replicas.owner, self.lease_seconds)

    async def news(self, job_id: str) -> None:
        """Something new is stored for the job: wake it here, or wherever a replica works it."""
        if job_id in self._tasks:
            self.wake(job_id)
        else:
            await self.replicas.notify(job_id)

    async def note_candidate(self, job_id: str, named: str) -> None:
        """A callback on the job's own URL named `named` while the job does not know its provider
        id (a lost submit answer, or one not read yet): keep it to be confirmed by the job's task."""
        await self._records.note(job_id, named)

    async def resume(self) -> int:
        """Take up the unfinished jobs nobody works, and keep doing so (and renewing this replica's
        leases) until stopped. Called once surfaces are registered; how many were taken up now."""
        await self.replicas.listen(self.wake)
        taken = await self._take_free(ours=True)
        if taken:
            log.info("resumed %d unfinished job(s)", taken)
        self._leases = asyncio.create_task(self._keep_leases(), name="leases")
        return taken

    async def _take_free(self, *, ours: bool = False) -> int:
        """Claim jobs nobody holds and start them: alone on the database, all of them; beside other
        replicas, no more than this one can hold in line, so that the others get their share."""
        room = 2 * self.settings.max_active_jobs - len(self._tasks) if self.replicas.shared else 1_000_000
        if room <= 0:
            return 0
        claimed = await self.replicas.claim_free(
            self.lease_seconds, room, surfaces=list(self.surfaces), providers=list(self.providers), ours=ours
        )
        for job_id in claimed:
            self.start(job_id, held=True)
        self._more = len(claimed) == room
        return len(claimed)

    async def _keep_leases(self) -> None:
        """Every third of a lease: renew what is held, stop what another replica took, take up free jobs."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look.wait(), timeout=self.lease_seconds / 3)
            self._look.clear()
            try:
                held = sorted(self._held)
                kept = await self.replicas.renew(held, self.lease_seconds)
                for job_id in set(held) - kept:
                    self._lost(job_id)
                await self._take_free()
            except Exception:
                # A store that is down for a moment: the next round tries again; leases lapse meanwhile.
                log.warning("could not renew leases or look for free jobs", exc_info=True)

    def _lost(self, job_id: str) -> None:
        if job_id not in self._held:
            return  # let go of here meanwhile, not taken
        self._held.discard(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            log.warning(
                "job %s: another replica took it over (this one's lease lapsed); stopping here", job_id
            )
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every job this process is running has finished (delivered, failed or parked)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def wait_job(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task])

    # --- one job ---------------------------------------------------------------------------------

    def _waker(self, job_id: str) -> asyncio.Event:
        return self._wakers.setdefault(job_id, asyncio.Event())

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._wakers.pop(job_id, None)
        self._gate.forget(job_id)
        self._records.forget(job_id)
        if self._more:
            self._look.set()  # there may be free jobs this one's place can take

    async def _run(self, job_id: str, *, claimed: bool = False) -> None:
        try:
            if not claimed and not await self.replicas.claim(job_id, self.lease_seconds):
                return  # another replica works it
            self._held.add(job_id)
            if await self._take_slot(job_id):
                await self._steps(job_id)
            await self._let_go(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", job_id)
            job = await self.store.job(job_id)
            if job is not None and job.state not in TERMINAL:
                await self.fail(job, SORRY)
        finally:
            self._slots.leave(job_id)
            self._held.discard(job_id)

    async def _let_go(self, job_id: str) -> None:
        """The job's task ends: finished, or parked for a replica that runs its surface or provider,
        which may claim it at once."""
        self._held.discard(job_id)  # first: the next renewal must not take its absence for a takeover
        job = await self.store.job(job_id)
        if job is not None and job.state not in TERMINAL:
            await self.replicas.release([job_id])

    async def _take_slot(self, job_id: str) -> bool:
        """Wait in line for a slot, telling the requester their place; False when the job is over
        (or its deadline passed while it waited: then it is failed here)."""
        if self._slots.take(job_id):
            return True
        job = await self.store.job(job_id)
        if job is None or job.state in TERMINAL:
            return False
        bind_job(job)
        turn = self._slots.join(job_id)
        told: int | None = None
        woken = False
        while not turn.done():
            expired = self._timed_out(job) if job.state in _AT_PROVIDER else None
            if expired is not None:
                self._slots.leave(job_id)
                await self.fail(job, expired)
                return False
            position = self._slots.position(job_id)
            if position != told and await self._progress(job, "queued", position):
                told = position
            # Look again when this job may next be shown its place, or at its deadline.
            wait = max(self._gate.next_try(job_id, len(self._tasks)) - self.clock(), PROGRESS_EVERY)
            if job.state in _AT_PROVIDER:
                wait = min(wait, job.deadline - self.clock())
            woken = await wait_for_turn(turn, self._waker(job_id), wait) or woken
        if woken:
            self.wake(job_id)  # a callback came while the job waited: its next step looks at once
        return True

    async def _steps(self, job_id: str) -> None:
        while True:
            job = await self.store.job(job_id)
            if job is None or job.state in TERMINAL:
                return
            bind_job(job)  # this task's log lines name the job, as it is at this step
            if job.state in _AT_PROVIDER:
                expired = self._timed_out(job)
                if expired is not None:
                    await self.fail(job, expired)
                    continue
                provider = self.providers.get(job.provider)
                if provider is None:
                    log.warning("job %s waits for provider %r, which is not running", job.id, job.provider)
                    return  # parked until a process that runs its provider starts
                await self._provider_step(provider, job)
            elif not await self._deliver(job):
                return  # parked: its surface is not running in this process

    async def _provider_step(self, provider: Provider, job: Job) -> None:
        if job.state is JobState.QUEUED:
            await self._submit(provider, job)
        elif job.state is JobState.SUBMITTING:
            await self._await_unknown(provider, job)
        else:
            await self._await_result(provider, job)

    async def fail(self, job: Job, message: str) -> None:
        """Mark the job failed (its reservation released in the same transaction) and tell the requester."""
        if not await self.store.transition(job.id, JobState.FAILED, error=message):
            return
        self.metrics.finished(job, JobState.FAILED, self.clock())
        log.info("job %s failed: %s", job.id, message, extra=job_fields(job, state=JobState.FAILED))
        surface = self.surfaces.get(job.surface)
        if surface is not None:
            try:
                await surface.tell(job, message)
            except Exception:
                log.exception("job %s: could not tell the requester", job.id)

    def _timed_out(self, job: Job) -> str | None:
        if self.clock() <= job.deadline:
            return None
        minutes = round(self.settings.job_timeout_seconds / 60)
        return f"The image took longer than {minutes} minutes, so the bot gave up; your quota was given back."

    async def _progress(
        self, job: Job, stage: str, queue_position: int | None = None, *, milestone: bool = False
    ) -> bool:
        """Show the job's progress if the policy of `bot.pacing` allows it now; True when shown."""
        surface = self.surfaces.get(job.surface)
        says = (stage, queue_position)  # the elapsed time alone is no news (`bot.pacing`)
        if surface is None or not self._gate.allow(job.id, len(self._tasks), milestone=milestone, says=says):
            return False
        try:
            await surface.progress(job, Progress(stage, self.clock() - job.created_at, queue_position))
        except Exception:
            log.warning("job %s: progress update failed", job.id, exc_info=True)
        return True

    async def _wait_for_wake(self, job_id: str, seconds: float) -> bool:
        """Sleep until a callback wakes the job or `seconds` pass. True when woken."""
        event = self._waker(job_id)
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        event.clear()
        return True

    # --- submit ----------------------------------------------------------------------------------

    async def _submit(self, provider: Provider, job: Job) -> None:
        if not await self.store.transition(job.id, JobState.SUBMITTING):
            return
        await self._progress(job, "queued", await self.store.queue_position(job), milestone=True)
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
            self.metrics.provider_error(provider.name, exc)
            log.warning("job %s: submit outcome unknown (%s); not resending", job.id, exc.detail)
            await self._records.lost(job.id, known, exc.user_message)
            return
        except ProviderError as exc:
            self.metrics.provider_error(provider.name, exc)
            log.warning("job %s: provider refused: %s", job.id, exc)
            self.router.record(provider.name, exc)
            if not await self._fail_over(provider, job, exc, started, tried | {provider.name}):
                await self.fail(job, exc.user_message)
            return
        except BadInput as exc:  # a reference that could not be read or is no longer held
            await self.fail(job, exc.user_message)
            return
        self.router.record(provider.name, None)
        await self.store.transition(job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None)
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
        other = self.router.takes_over(job, exc, started, tried)
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
            self.store, job.id, from_provider=provider.name, to_provider=other.name, cost_usd=cost
        ):
            return False
        log.info(
            "job %s: %s refused it (%s); %s takes it over", job.id, provider.name, exc.detail, other.name
        )
        moved = await self.store.job(job.id)
        if moved is None:
            return False
        await self._send(other, moved, [], tried)
        return True

    async def _budget_allows(self, job: Job, more_usd: float) -> bool:
        """Whether the tenant's monthly budget (if any) still holds `more_usd` on top of what is spent
        and reserved (this job's own reservation included)."""
        status = await self.store.quota(job.user_key, job.tenant)
        return status.budget_usd is None or status.month_spent_usd + more_usd <= status.budget_usd + 1e-9

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

    async def _await_unknown(self, provider: Provider, job: Job) -> None:
        """We cannot ask the provider about a request whose id we never read. Only a callback can
        save it: one that carries the result, or one that names the id (then confirmed and bound)."""
        cached = await self.store.callback_status(job.id)
        final = final_status(cached)
        if final is not None:
            await self._settle_status(provider, job, final)
            return
        if not self.callbacks_enabled:
            await self.fail(
                job,
                job.error
                or "The bot restarted while sending this request, so it was not sent again; your quota was given back.",
            )
            return
        ids = await self._records.recover(provider, job, SubmitRecord.read(cached))
        if ids is not None:
            await self._bind(provider, job, ids)
            return
        await self._progress(job, "running")
        # Waiting for a callback needs nothing of the provider: the slot goes to a job that does,
        # and this one takes its turn again once it has something to do (or to look at again).
        self._slots.leave(job.id)
        await self._wait_for_wake(job.id, min(PROGRESS_TICK, job.deadline - self.clock()))
        await self._take_slot(job.id)

    async def _bind(self, provider: Provider, job: Job, ids: list[str]) -> None:
        """The job's requests so far are `ids`: send the rest, or go on as `running` with them."""
        if len(ids) < provider.requests_for(job.request):
            log.info("job %s: %s confirmed %s; sending the rest", job.id, provider.name, ids[-1])
            await self._records.sending(job.id, ids)
            await self._send(provider, job, ids)
            return
        provider_job_id = provider.join_ids(ids)
        if await self.store.transition(job.id, JobState.RUNNING, provider_job_id=provider_job_id, error=None):
            log.info("job %s: recovered from its callback as %s", job.id, provider_job_id)
            self.wake(job.id)  # read its status now: the callback that named it has come already

    async def _await_result(self, provider: Provider, job: Job) -> None:
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
                await self._settle_status(provider, job, status)
                return
            if status is not None:
                stage = "queued" if status.state == "queued" else "running"
                await self._progress(job, stage, status.queue_position)
            else:
                await self._progress(job, "running")
            if self._timed_out(job) is not None:
                return  # the loop in _steps fails it
            timeout = min(next_poll - self.clock(), PROGRESS_TICK, job.deadline - self.clock() + 0.01)
            if await self._wait_for_wake(job.id, timeout):
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

    async def _settle_status(self, provider: Provider, job: Job, status: ProviderStatus) -> None:
        if status.state == "failed":
            self.metrics.provider_error(provider.name, "GenerationFailed")
            await self.fail(job, status.error or f"{provider.name} could not make the image.")
            return
        if not status.images:
            await self.fail(job, f"{provider.name} finished but sent no image; your quota was given back.")
            return
        results = []
        for image in status.images:
            try:
                fetched = await fetch_image(self.http, image.url, typed=False, max_bytes=RESULT_MAX_BYTES)
            except MediaError as exc:
                log.warning("job %s: result could not be fetched: %s", job.id, exc)
                await self.fail(job, "The finished image could not be downloaded from the provider.")
                return
            results.append(
                NewMedia(fetched.data, fetched.content_type, fetched.width, fetched.height, image.nsfw)
            )
        # The images and the move to `completed` in one transaction: none is kept for a job that
        # was failed meanwhile, and the job never names an image not kept.
        await self.store.complete(job.id, results)

    # --- deliver ---------------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> bool:
        surface = self.surfaces.get(job.surface)
        if surface is None:
            log.warning("job %s waits for surface %r, which is not running", job.id, job.surface)
            return False
        if job.state is JobState.COMPLETED and not await self.store.transition(job.id, JobState.DELIVERING):
            return True
        await self._progress(job, "delivering", milestone=True)
        images = await self.result_images(job)
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                posts = await surface.deliver(job, images)
                break
            except Exception:
                log.warning("job %s: delivery attempt %d failed", job.id, attempt, exc_info=True)
                await self.sleep(attempt * 2.0)
        else:
            await self.fail(
                job, "The image was made but could not be posted here; your quota was given back."
            )
            return True
        # Numbered before the job counts as delivered: a crash in between numbers it at redelivery.
        try:
            await self.versions.record(job, posts)
        except Exception:
            # The images are posted: a thread's numbering that failed must not turn them into a refund.
            log.warning("job %s: could not number its version in the thread", job.id, exc_info=True)
        # The posts and the move to `delivered` in one transaction (the posts kept either way).
        if await self.store.delivered(job.id, job.surface, [(p.message_key, p.thread_key) for p in posts]):
            self.metrics.finished(job, JobState.DELIVERED, self.clock())
            log.info(
                "job %s delivered (%d image(s))",
                *(job.id, len(images)),
                extra=job_fields(job, state=JobState.DELIVERED),
            )
        return True

    async def result_images(self, job: Job) -> list[OutputImage]:
        images = []
        for media_id in job.result_media:
            m = await self.store.media(media_id)
            if m is not None:
                images.append(OutputImage(m.id, m.data, m.content_type, m.width, m.height, m.nsfw))
        return images

"""`JobRunner` owns running jobs: one task per job, wake-ups, progress, deadlines and delivery.

Each step starts from the state the store holds, so a job picked up after a crash continues where
it was: nothing in memory is needed to finish it.

queued      -> submit to the provider (state `submitting` is written first); a refusal that took
               nothing (402, 429/5xx, unreachable) moves the job to the next provider (`bot.jobs.routing`)
submitting  -> the request may have been sent but its answer was lost: wait for the provider's
               callback; the id it names is bound to the job once a status read confirms it
               (`bot.jobs.recovery`), then the job goes on as `running`
running     -> wait for the callback, or poll with backoff; fetch the results
completed   -> deliver through the surface that asked
delivering  -> deliver again (surfaces deliver idempotently per job id), then settle

The steps at the provider (the first three) are in `bot.jobs.steps`, each given the job's own
`JobContext` (`_context`), not the runner; the post (the last two) is in `bot.jobs.delivery`.

The runner is the one worker: the server hands it providers' callbacks (`handle_callback`), the
leases wake it, and admission (`bot.jobs.engine`) only stores a job and calls `start`.

A replica works only the jobs it holds a lease on (`storage.replicas`; `bot.jobs.leases` keeps them): it
claims a job before its first step, renews its leases while it works, and looks every third of a
lease for jobs nobody holds (new, released at a clean stop, or lapsed because their replica died). News of a job that reaches
another replica (a provider's callback) is sent to its owner through the store.

At most `HIDREAM_MAX_ACTIVE_JOBS` jobs are worked at once (resumed ones too): the others wait for a
slot, still `queued` in the store, and their requesters are told their place in the line. Progress
edits follow the policy of `bot.jobs.pacing`: one job's at most every 2 s, fewer the more jobs there are,
and never more than a fixed number a second in all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial

from bot import words
from bot.jobs.credentials import ContentCredentials, load_credentials
from bot.jobs.delivery import Delivery
from bot.jobs.images import LinkSigner, ResultGate
from bot.jobs.leases import Leases
from bot.jobs.metrics import Metrics
from bot.jobs.pacing import PROGRESS_EVERY, ProgressGate, Slots, wait_for_turn
from bot.jobs.routing import Router
from bot.jobs.steps import CALLBACK_GRACE, JobContext, ProviderSteps, overdue
from bot.logs import Throttle, bind_job, job_fields
from bot.model.config import Settings
from bot.model.errors import CallbackRejected, StoreUnavailable
from bot.model.jobs import TERMINAL, Job, JobState, Progress, Surface
from bot.providers.base import Provider, Sleep
from bot.transport import Transport
from storage.fencing import LeaseLost
from storage.replicas import Replicas, replicas_for
from storage.rows import Lease
from storage.store import Store

log = logging.getLogger(__name__)

__all__ = ["CALLBACK_GRACE", "PROGRESS_EVERY", "JobRunner"]

SORRY = words.FAILED_INSIDE
# A job whose step found the database unreachable (or its disk full) tries the step again after this
# long, doubled at each attempt up to the cap: soon after the database is back, every such job goes on.
STORE_RETRY_FIRST = 0.25
STORE_RETRY_CAP = 2.0
# While the database stays unreachable, the runner says so at most this often (seconds).
OUTAGE_SAID_EVERY = 30.0
# The states in which a job's next step is the provider's, and its deadline applies.
_AT_PROVIDER = frozenset({JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING})


class Outage:
    """What the runner says of a database that cannot be reached or written: once when a job first
    finds it so, then at most every OUTAGE_SAID_EVERY seconds while jobs wait on it, and once when a
    job that waited has taken a step again. Never a line per job or per attempt."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.waiting: set[str] = set()
        self.since: float | None = None  # when a job first found it so (None: no outage said)
        self._said = Throttle(OUTAGE_SAID_EVERY, clock)

    def met(self, job_id: str, exc: StoreUnavailable) -> None:
        self.waiting.add(job_id)
        if self.since is None:
            self.since = self.clock()
        if self._said.allow():
            log.warning(
                "the database cannot be reached or written (%s); %d job(s) wait for it and try again",
                *(exc.detail, len(self.waiting)),
            )

    def passed(self, job_id: str) -> None:
        """A step of `job_id` ran to its end: if it had waited on the database, the outage is over."""
        if job_id not in self.waiting:
            return
        self.waiting.discard(job_id)
        if self.since is not None:
            log.info(
                "the database answers again after %.1f s; the %d job(s) that waited go on",
                *(self.clock() - self.since, len(self.waiting) + 1),
            )
            self.since = None

    def forget(self, job_id: str) -> None:
        self.waiting.discard(job_id)


class JobRunner:
    """Runs every unfinished job of this process to its end. Enter it to start; leaving cancels the
    tasks (their jobs resume on the next start)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: Mapping[str, Provider],
        http: Transport,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        callback_grace: float = CALLBACK_GRACE,
        results_http: Transport | None = None,
        router: Router | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
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
        self.outage = Outage()
        self.metrics = metrics or Metrics(store)
        self.metrics.watch(lambda: self._slots.active)
        self.metrics.watch_providers(
            lambda: {name: (b.state, b.consecutive_failures) for name, b in self.router.states().items()}
        )
        self._gate = ProgressGate(clock)
        # The results kept and posted at once (streamed from their spooled files: see bot/jobs/steps.py).
        self.results = ResultGate(settings.upload_slots)
        self._delivery = Delivery(
            store,
            self.results,
            self.metrics,
            clock=clock,
            sleep=sleep,
            fail=self.fail,
            progress=self.progress,
            hold=lambda job_id: self.leases.hold(job_id),
        )
        self._at_provider = ProviderSteps(
            settings,
            store,
            http,
            router=self.router,
            metrics=self.metrics,
            results=self.results,
            clock=clock,
            callback_grace=callback_grace,
            results_http=results_http,
        )
        self.replicas: Replicas = replicas_for(store)
        self.lease_seconds = settings.lease_seconds
        self.leases = Leases(
            store,
            self.replicas,
            lease_seconds=self.lease_seconds,
            max_active_jobs=settings.max_active_jobs,
            serves=lambda: (self.surfaces, self.providers),
            start=lambda job_id: self.start(job_id, held=True),
            working=self.working,
            stop=self.stop_job,
            wake=self.wake,
        )

    async def __aenter__(self) -> JobRunner:
        secret = await self.store.secret("media-links")
        self.signer = self._at_provider.signer = LinkSigner(secret, self.settings.public_url)
        self._at_provider.credentials = await load_credentials(self.store, self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        held = await self.leases.stop()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.leases.close(held)

    @property
    def credentials(self) -> ContentCredentials | None:
        """What signs the results' content credentials; None until the runner is entered."""
        return self._at_provider.credentials

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.settings.public_url)

    # --- what admission, the server and the leases call -------------------------------------------

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
            self.leases.held.add(job_id)  # renewed from now on, like any claimed job
        task = asyncio.create_task(self._run(job_id, claimed=held), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._forget(job_id))

    def wake(self, job_id: str) -> None:
        """Something new is stored for the job (a callback): look at it now, not at the next poll."""
        if job_id in self._tasks:
            self._waker(job_id).set()

    def lease_for_new_job(self) -> Lease | None:
        """The lease a job admitted here is stored with (`Leases.for_new_job`)."""
        return self.leases.for_new_job()

    async def news(self, job_id: str) -> None:
        """Something new is stored for the job: wake it here, or wherever a replica works it."""
        if job_id in self._tasks:
            self.wake(job_id)
        else:
            await self.replicas.notify(job_id)

    async def handle_callback(self, token: str, headers: Mapping[str, str], body: bytes) -> None:
        """A provider's callback for the job that owns `token`: stored, then the job's task is woken
        here or wherever a replica works it. Raises CallbackRejected (-> 4xx)."""
        job = await self.store.job_by_token(token)
        if job is None:
            raise CallbackRejected("unknown callback token", status=404)
        provider = self.providers.get(job.provider)
        if provider is None:
            raise CallbackRejected(f"provider {job.provider!r} is not running here", status=503)
        if await self._at_provider.callback(provider, job, headers, body):
            await self.news(job.id)

    async def resume(self) -> int:
        """Take up the unfinished jobs nobody works, and keep doing so (and renewing this replica's
        leases) until stopped. Called once surfaces are registered; how many were taken up now."""
        taken = await self.leases.resume()
        if taken:
            log.info("resumed %d unfinished job(s)", taken)
        return taken

    def working(self) -> int:
        """How many jobs have a task here (working, or waiting for a slot)."""
        return len(self._tasks)

    def stop_job(self, job_id: str) -> bool:
        """Cancel the job's task here (another replica took the job over); False when it has none."""
        task = self._tasks.get(job_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def wait_idle(self) -> None:
        """Wait until every job this process is running has finished (delivered, failed or parked)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def wait_job(self, job_id: str) -> Job | None:
        """Wait until this process has finished running the job; the job as stored then."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task])
        return await self.store.job(job_id)

    # --- one job ---------------------------------------------------------------------------------

    def _waker(self, job_id: str) -> asyncio.Event:
        return self._wakers.setdefault(job_id, asyncio.Event())

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._wakers.pop(job_id, None)
        self._gate.forget(job_id)
        self._at_provider.forget(job_id)
        self.outage.forget(job_id)
        self.leases.job_ended()

    async def _run(self, job_id: str, *, claimed: bool = False) -> None:
        try:
            attempt = 0
            while True:
                try:
                    if not claimed and not await self.leases.claim(job_id):
                        return  # another replica works it
                    claimed = True
                    self.leases.held.add(job_id)
                    if await self.take_slot(job_id):
                        await self._steps(job_id)
                    await self.leases.let_go(job_id)
                    return
                except StoreUnavailable as exc:
                    # Nothing of the step was kept: its next attempt starts again from the stored state
                    # (a post already made is not made again: surfaces deliver idempotently per job).
                    await self.store_away(job_id, exc, attempt)
                    attempt += 1
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            # Frozen past its lease here while another replica took the job: that one finishes it.
            self.leases.lost(job_id)
        except Exception:
            log.exception("job %s: unexpected error", job_id)
            job = await self.store.job(job_id)
            if job is not None and job.state not in TERMINAL:
                await self.fail(job, SORRY)
        finally:
            self._slots.leave(job_id)
            self.leases.held.discard(job_id)
            self._delivery.drop(job_id)  # kept but not posted by this task (stopped, or moved on)

    async def store_away(self, job_id: str, exc: StoreUnavailable, attempt: int) -> None:
        """The job met a database it cannot reach or write: said (by `Outage`, not once per job), then
        waited out a little, longer at each `attempt`, before the job tries again."""
        self.outage.met(job_id, exc)
        await self.sleep(min(STORE_RETRY_FIRST * 2**attempt, STORE_RETRY_CAP))

    async def take_slot(self, job_id: str) -> bool:
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
            expired = self._overdue(job) if job.state in _AT_PROVIDER else None
            if expired is not None:
                self._slots.leave(job_id)
                await self.fail(job, expired)
                return False
            position = self._slots.position(job_id)
            if position != told and await self.progress(job, "queued", position):
                told = position
            # Look again when this job may next be shown its place, or at its deadline.
            wait = max(self._gate.next_try(job_id, len(self._tasks)) - self.clock(), PROGRESS_EVERY)
            if job.state in _AT_PROVIDER:
                wait = min(wait, job.deadline - self.clock())
            woken = await wait_for_turn(turn, self._waker(job_id), wait) or woken
        if woken:
            self.wake(job_id)  # a callback came while the job waited: its next step looks at once
        return True

    def leave_slot(self, job_id: str) -> None:
        """Give the job's slot to the next in line while it waits on nothing of its provider's."""
        self._slots.leave(job_id)

    async def _steps(self, job_id: str) -> None:
        while True:
            job = await self.store.job(job_id)
            if job is None or job.state in TERMINAL:
                return
            bind_job(job)  # this task's log lines name the job, as it is at this step
            if job.state in _AT_PROVIDER:
                expired = self._overdue(job)
                if expired is not None:
                    await self.fail(job, expired)
                    continue
                provider = self.providers.get(job.provider)
                if provider is None:
                    log.warning("job %s waits for provider %r, which is not running", job.id, job.provider)
                    return  # parked until a process that runs its provider starts
                await self._at_provider.step(provider, job, self._context(job_id))
            elif not await self._deliver(job):
                return  # parked: its surface is not running in this process
            self.outage.passed(job_id)

    def _context(self, job_id: str) -> JobContext:
        return JobContext(
            fail=self.fail,
            progress=self.progress,
            wait_for_wake=partial(self.wait_for_wake, job_id),
            wake=partial(self.wake, job_id),
            take_slot=partial(self.take_slot, job_id),
            leave_slot=partial(self.leave_slot, job_id),
            hand_over=partial(self._delivery.hand_over, job_id),
            store_away=partial(self.store_away, job_id),
        )

    async def fail(self, job: Job, message: str) -> None:
        """Mark the job failed (its reservation released in the same transaction) and tell the requester."""
        if not await self.store.transition(job.id, JobState.FAILED, error=message):
            return
        self.metrics.finished(job, JobState.FAILED, self.clock())
        log.info("job %s failed: %s", job.id, message, extra=job_fields(job, state=JobState.FAILED))
        surface = self.surfaces.get(job.surface)
        if surface is not None:
            try:
                await surface.tell(job, words.failed(message))
            except Exception:
                log.exception("job %s: could not tell the requester", job.id)

    def _overdue(self, job: Job) -> str | None:
        return overdue(job, self.clock(), self.settings.job_timeout_seconds)

    async def progress(
        self, job: Job, stage: str, queue_position: int | None = None, *, milestone: bool = False
    ) -> bool:
        """Show the job's progress if the policy of `bot.jobs.pacing` allows it now; True when shown."""
        surface = self.surfaces.get(job.surface)
        says = (stage, queue_position)  # the elapsed time alone is no news (`bot.jobs.pacing`)
        if surface is None or not self._gate.allow(job.id, len(self._tasks), milestone=milestone, says=says):
            return False
        try:
            await surface.progress(job, Progress(stage, self.clock() - job.created_at, queue_position))
        except Exception:
            log.warning("job %s: progress update failed", job.id, exc_info=True)
        return True

    async def wait_for_wake(self, job_id: str, seconds: float) -> bool:
        """Sleep until a callback wakes the job or `seconds` pass. True when woken."""
        event = self._waker(job_id)
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        event.clear()
        return True

    # --- deliver ---------------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> bool:
        """Post the job's images; False when it is parked (its surface is not running here)."""
        surface = self.surfaces.get(job.surface)
        if surface is None:
            log.warning("job %s waits for surface %r, which is not running", job.id, job.surface)
            return False
        await self._delivery.post(job, surface)
        return True

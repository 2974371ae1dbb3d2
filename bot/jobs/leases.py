"""`Leases`: the jobs this replica holds a lease on (`storage.replicas`), for the `JobRunner` that owns it,
which gives it four of its own calls (start a held job, how many it works, stop one, wake one), not itself.

A job is claimed before its first step (or held from its first row, when this replica admitted it),
renewed every third of a lease while its task works it, and let go of when the task ends. A lease that
could not be renewed was taken by another replica: the job's task here stops. Each round also takes up
jobs nobody holds (new, released at a clean stop, or lapsed because their replica died): all of them
when this replica is alone on the database; beside others, no more than it can hold in line, so that
the others get their share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from bot.model.jobs import TERMINAL
from storage.fencing import Hold
from storage.replicas import Replicas
from storage.rows import Lease
from storage.store import Store

log = logging.getLogger(__name__)

__all__ = ["Leases"]


class Leases:
    def __init__(
        self,
        store: Store,
        replicas: Replicas,
        *,
        lease_seconds: float,
        max_active_jobs: int,
        serves: Callable[[], tuple[Collection[str], Collection[str]]],
        start: Callable[[str], None],
        working: Callable[[], int],
        stop: Callable[[str], bool],
        wake: Callable[[str], None],
    ) -> None:
        self._start = start  # run a job whose lease is held here
        self._working = working  # how many jobs have a task here
        self._stop = stop  # stop a job's task here; False when it has none
        self._wake = wake  # a job has news: look at it now
        self.store = store
        self.replicas = replicas
        self.lease_seconds = lease_seconds
        # How many jobs this replica holds in line beside others: twice those it works at once.
        self.line = 2 * max_active_jobs
        self.serves = serves  # the surfaces and providers this replica runs
        self.held: set[str] = set()  # jobs whose lease this replica holds
        self._keeping: asyncio.Task[None] | None = None
        self._look = asyncio.Event()  # look for free jobs now, not at the next round
        self._more = False  # the last look found as many free jobs as it could take

    def for_new_job(self) -> Lease | None:
        """A job admitted here is this replica's from its first row, unless this replica's line is
        full while others share the database: then it is stored for any of them to take up (this
        one too, once it has room), rather than wait here while another replica idles."""
        if self.replicas.shared and self._working() >= self.line:
            self._more = True  # look for free jobs again as soon as one of this replica's ends
            return None
        return Lease(self.replicas.owner, self.lease_seconds)

    async def claim(self, job_id: str) -> bool:
        return await self.replicas.claim(job_id, self.lease_seconds)

    def hold(self, job_id: str) -> Hold:
        """This replica's claim on the job, which fences its writes to the platform."""
        return self.replicas.hold(job_id, self.lease_seconds)

    def lost(self, job_id: str) -> None:
        """The job's task here found at a fenced write that another replica claimed the job."""
        self.held.discard(job_id)
        self.replicas.forget(job_id)
        log.warning(
            "job %s: another replica took it over (this one's lease lapsed); it posts nothing here", job_id
        )

    async def resume(self) -> int:
        """Take up the unfinished jobs nobody works, and keep doing so (and renewing the leases held)
        until stopped; how many were taken up now."""
        await self.replicas.listen(self._wake)
        taken = await self._take_free(ours=True)
        self._keeping = asyncio.create_task(self._keep(), name="leases")
        return taken

    def job_ended(self) -> None:
        if self._more:
            self._look.set()  # there may be free jobs the ended one's place can take

    async def let_go(self, job_id: str) -> None:
        """The job's task ends: finished, or parked for a replica that runs its surface or provider,
        which may claim it at once."""
        self.held.discard(job_id)  # first: the next renewal must not take its absence for a takeover
        self.replicas.forget(job_id)
        job = await self.store.job(job_id)
        if job is not None and job.state not in TERMINAL:
            await self.replicas.release([job_id])

    async def stop(self) -> list[str]:
        """Stop renewing; the jobs held now, to release once their tasks have ended."""
        if self._keeping is not None:
            self._keeping.cancel()
            await asyncio.gather(self._keeping, return_exceptions=True)
        return sorted(self.held)  # before the tasks end: each lets go of its own as it ends

    async def close(self, held: list[str]) -> None:
        try:
            # A clean stop lets go of its jobs: another replica, or this one restarted, goes on at once.
            await self.replicas.release(held)
        except Exception:
            log.warning("could not release %d lease(s); they lapse on their own", len(held), exc_info=True)
        await self.replicas.close()

    async def _take_free(self, *, ours: bool = False) -> int:
        """Claim jobs nobody holds and start them, as many as this replica has room for."""
        room = self.line - self._working() if self.replicas.shared else 1_000_000
        if room <= 0:
            return 0
        surfaces, providers = self.serves()
        claimed = await self.replicas.claim_free(
            self.lease_seconds, room, surfaces=list(surfaces), providers=list(providers), ours=ours
        )
        for job_id in claimed:
            self._start(job_id)
        self._more = len(claimed) == room
        return len(claimed)

    async def _keep(self) -> None:
        """Every third of a lease: renew what is held, stop what another replica took, take up free jobs."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look.wait(), timeout=self.lease_seconds / 3)
            self._look.clear()
            try:
                held = sorted(self.held)
                kept = await self.replicas.renew(held, self.lease_seconds)
                for job_id in set(held) - kept:
                    self._lost(job_id)
                await self._take_free()
            except Exception:
                # A store that is down for a moment: the next round tries again; leases lapse meanwhile.
                log.warning("could not renew leases or look for free jobs", exc_info=True)

    def _lost(self, job_id: str) -> None:
        if job_id not in self.held:
            return  # let go of here meanwhile, not taken
        self.held.discard(job_id)
        self.replicas.forget(job_id)
        if self._stop(job_id):
            log.warning(
                "job %s: another replica took it over (this one's lease lapsed); stopping here", job_id
            )

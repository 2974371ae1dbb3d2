"""`Retention`: the long-lived part that keeps the database from growing without bound.

With `HIDREAM_MEDIA_RETENTION_DAYS` > 0 it sweeps when entered and then every `every` seconds:
reference and result images not used for that many days are deleted (never those an unfinished job
names), finished jobs older than that lose their bulky columns, and the freed space is given back
(SQLite: pages to the file system; PostgreSQL: autovacuum makes it reusable). With 0 it does
nothing: everything is kept forever. The SQL is the store's backend's (storage/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.words import too_old as too_old  # the words moved; engine and tests still name them here
from storage.retention import sweeps_for
from storage.store import Store

log = logging.getLogger(__name__)

DAY = 86400.0
SWEEP_EVERY = 3600.0
# Rows per transaction: images can be tens of MB each, job rows are small.
MEDIA_BATCH = 20
JOB_BATCH = 500


@dataclass(frozen=True)
class Swept:
    """What one sweep did."""

    media: int
    jobs: int
    pages_freed: int


class Retention:
    """Enter to prepare the database (SQLite: incremental vacuum, once) and start sweeping; leave to stop."""

    def __init__(
        self,
        store: Store,
        days: int,
        *,
        every: float = SWEEP_EVERY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.sweeps = sweeps_for(store)
        self.days = days
        self.every = every
        self.clock = clock
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.days > 0

    async def __aenter__(self) -> Retention:
        if self.enabled:
            if await self.sweeps.prepare():
                log.info("the database now gives freed space back after each retention sweep")
            self._task = asyncio.create_task(self._run(), name="retention")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                # A failed sweep (a busy or full disk) is retried at the next one.
                log.exception("retention sweep failed")
            await self.sleep(self.every)

    async def sweep(self, now: float | None = None) -> Swept:
        """One full sweep, in bounded batches; `now` defaults to the clock."""
        if not self.enabled:
            return Swept(0, 0, 0)
        cutoff = (self.clock() if now is None else now) - self.days * DAY
        media = await _in_batches(lambda n: self.sweeps.delete_old_media(cutoff, n), MEDIA_BATCH)
        jobs = await _in_batches(lambda n: self.sweeps.clear_finished_jobs(cutoff, n), JOB_BATCH)
        freed = await self.sweeps.give_back() if media or jobs else 0
        if media or jobs:
            log.info(
                "retention: deleted %d image(s), cleared %d finished job(s), gave back %d page(s)",
                media,
                jobs,
                freed,
            )
        return Swept(media, jobs, freed)


async def _in_batches(step: Callable[[int], Awaitable[int]], size: int) -> int:
    """Run `step` (one transaction of at most `size` rows) until a batch comes back short."""
    total = 0
    while True:
        done = await step(size)
        total += done
        if done < size:
            return total

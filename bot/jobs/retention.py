"""`Retention`: the long-lived part that keeps the database from growing without bound.

With `HIDREAM_MEDIA_RETENTION_DAYS` > 0 it sweeps when entered and then every `every` seconds:
reference and result images not used for that many days are deleted (never those an unfinished job
names), finished jobs older than that lose their bulky columns, and the freed space is given back
(SQLite: pages to the file system; PostgreSQL: autovacuum makes it reusable). With 0 it does
nothing: everything is kept forever. With `subject_days` > 0 (HIDREAM_SUBJECT_RETENTION_DAYS) each
sweep also deletes saved subjects nobody has used for that many days, with their images, whatever
the media retention. The SQL is the store's (storage/retention.py).
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
    subjects: int = 0


class Retention:
    """Enter to prepare the database (SQLite: incremental vacuum, once) and start sweeping; leave to stop."""

    def __init__(
        self,
        store: Store,
        days: int,
        *,
        subject_days: int = 0,
        every: float = SWEEP_EVERY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.sweeps = sweeps_for(store)
        self.days = days
        self.subject_days = subject_days
        self.every = every
        self.clock = clock
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.days > 0 or self.subject_days > 0

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
        now = self.clock() if now is None else now
        subjects, media = await self._unused_subjects(now)
        jobs = 0
        if self.days > 0:
            cutoff = now - self.days * DAY
            media += await _in_batches(lambda n: self.sweeps.delete_old_media(cutoff, n), MEDIA_BATCH)
            jobs = await _in_batches(lambda n: self.sweeps.clear_finished_jobs(cutoff, n), JOB_BATCH)
        freed = await self.sweeps.give_back() if media or jobs or subjects else 0
        if media or jobs or subjects:
            log.info(
                "retention: deleted %d unused subject(s) and %d image(s), cleared %d finished job(s), "
                "gave back %d page(s)",
                subjects,
                media,
                jobs,
                freed,
            )
        return Swept(media, jobs, freed, subjects)

    async def _unused_subjects(self, now: float) -> tuple[int, int]:
        """Subjects unused for `subject_days` and their images, deleted in batches: how many of each."""
        if self.subject_days <= 0:
            return 0, 0
        subjects = images = 0
        while True:
            done, gone = await self.sweeps.delete_unused_subjects(now - self.subject_days * DAY, MEDIA_BATCH)
            subjects, images = subjects + done, images + gone
            if done < MEDIA_BATCH:
                return subjects, images


async def _in_batches(step: Callable[[int], Awaitable[int]], size: int) -> int:
    """Run `step` (one transaction of at most `size` rows) until a batch comes back short."""
    total = 0
    while True:
        done = await step(size)
        total += done
        if done < size:
            return total

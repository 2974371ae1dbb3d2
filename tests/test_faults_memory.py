"""5,000 jobs through the whole engine (admission, the worker, the sandbox provider over the bot's own
HTTP server, results kept in the store, delivery) leave the bot's memory where the first 500 left it.

What is measured: the process's resident set (RSS, /proc/self/statm), after a full garbage collection
and `malloc_trim(0)` (glibc hands freed heap pages back), once the first 500 jobs are delivered and
again after the 5,000th. RSS rather than tracemalloc: it counts what tracemalloc cannot see (Pillow's
image buffers, SQLite's page cache, sockets' buffers), which is where a leak of results would show,
and it costs the run nothing (tracemalloc would slow 5,000 jobs several times over). The figures are
written to FAULT_FIGURES_DIR when it is set.

The delivery target is as cheap as one can be (`CountingSurface` keeps a count and no image), the
sandbox makes 256x256 images with no delay, and the jobs run 200 at a time.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from pathlib import Path
from typing import Any

import pytest

from bot.model.jobs import Job, OutputImage, Post, Progress
from tests.support.engine import chat
from tests.support.faults import Tally
from tests.support.harness import BotHarness

JOBS = 5_000
FIRST = 500
IN_FLIGHT = 200
ALLOWED_GROWTH_MB = 10.0


class CountingSurface:
    """A surface that delivers by counting: no image is kept past the call."""

    name = "test"

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self.told = 0
        self.changed = asyncio.Event()

    async def __aenter__(self) -> CountingSurface:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        self.delivered[job.id] = self.delivered.get(job.id, 0) + 1
        self.changed.set()
        return [Post(message_key=f"m-{job.id}", thread_key=None)]

    async def tell(self, job: Job, text: str) -> None:
        self.told += 1
        self.changed.set()

    async def progress(self, job: Job, progress: Progress) -> None:
        return None

    def factory(self, bot: Any) -> CountingSurface:
        return self

    @property
    def finished(self) -> int:
        return len(self.delivered) + self.told


def rss_mb() -> float:
    """Resident memory after a full collection, with freed heap pages handed back to the system."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc is not None:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * 4096 / 2**20


@pytest.mark.timeout(1800)
async def test_5000_sandbox_jobs_leave_memory_where_500_left_it(tmp_path: Path) -> None:
    tally = Tally("memory-5000-sandbox")
    surface = CountingSurface()
    env = {"HIDREAM_DAILY_IMAGE_QUOTA": JOBS, "HIDREAM_MAX_ACTIVE_JOBS": IN_FLIGHT}
    after_first = 0.0
    async with BotHarness(tmp_path, env, [surface.factory]) as bot:
        for i in range(JOBS):
            # Fifty people, so no one's daily limit is what stops the run.
            await bot.engine.submit(chat(f"a fox in the snow, number {i} --size 256x256", user=f"u{i % 50}"))
            while i + 1 - surface.finished > IN_FLIGHT:
                surface.changed.clear()
                await asyncio.wait_for(surface.changed.wait(), 120)
            if i + 1 == FIRST:
                await bot.runner.wait_idle()
                after_first = rss_mb()
        await bot.runner.wait_idle()
        after_all = rss_mb()
        unfinished = len(await bot.store.unfinished_jobs())

    tally.requests = tally.admitted = JOBS
    tally.delivered_once = sum(1 for n in surface.delivered.values() if n == 1)
    tally.delivered_twice_or_more = sum(1 for n in surface.delivered.values() if n > 1)
    tally.failed_refunded = surface.told
    tally.unfinished = unfinished
    tally.extra.update(rss_after_500_mb=round(after_first, 1), rss_after_5000_mb=round(after_all, 1))
    tally.write()

    assert tally.delivered_once == JOBS and tally.lost == 0, tally
    assert after_all - after_first <= ALLOWED_GROWTH_MB, (
        f"memory grew {after_all - after_first:.1f} MB from job {FIRST} to job {JOBS} "
        f"({after_first:.1f} -> {after_all:.1f} MB RSS)"
    )

"""At most HIDREAM_MAX_ACTIVE_JOBS jobs are worked at once; the others wait, told their place; and
progress edits keep to the documented rate (`bot.jobs.pacing`), counted on the injected clock.

The provider here holds every job until the test releases it, and counts how many it holds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import words
from bot.app import Bot
from bot.jobs.pacing import PROGRESS_BURST, PROGRESS_EVERY, PROGRESS_RATE, ProgressGate, Slots
from bot.model.jobs import Job, JobState, Progress
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness, until
from tests.support.holding import Clock, chat, holding, release_all


class TimedSurface(RecordingSurface):
    """Records each progress edit with the time on the bot's (injected) clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.edits: list[tuple[float, str, Progress]] = []

    async def progress(self, job: Job, progress: Progress) -> None:
        self.edits.append((self.clock(), job.id, progress))
        await super().progress(job, progress)


def start(tmp_path: Path, limit: int, surface: RecordingSurface, **options: Any) -> BotHarness:
    env = {"HIDREAM_MAX_ACTIVE_JOBS": limit, "HIDREAM_DAILY_IMAGE_QUOTA": 1000}
    # Callbacks on, with an hour's grace: a held job is looked at only when the test wakes it.
    return BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600, **options)


async def states(bot: Bot) -> Counter[JobState]:
    return Counter(job.state for job in await bot.store.unfinished_jobs())


async def test_200_jobs_with_8_slots_never_hold_more_than_8_and_deliver_each_once(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with start(tmp_path, 8, surface) as bot:
        provider = holding(bot)
        jobs = [await bot.engine.submit(chat(i)) for i in range(200)]
        await until(lambda: len(provider.held) == 8)
        assert (await states(bot))[JobState.QUEUED] == 192  # the rest wait in the store, queued
        while len(surface.deliveries) < 200:
            expected = min(8, 200 - len(provider.released))
            await until(lambda expected=expected: len(provider.held) == expected)  # type: ignore[misc]
            await release_all(bot, provider)
            target = len(provider.released)
            await until(lambda target=target: len(surface.deliveries) == target)  # type: ignore[misc]
        await asyncio.wait_for(bot.runner.wait_idle(), 60)

        assert provider.most_held == 8
        assert sorted(job_id for job_id, _ in surface.deliveries) == sorted(job.id for job in jobs)
        assert set(provider.submits) == {job.id for job in jobs} and set(provider.submits.values()) == {1}
        assert await bot.store.unfinished_jobs() == []


async def test_resumed_jobs_obey_the_same_bound(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with start(tmp_path, 3, surface) as bot:
        provider = holding(bot)
        runner = bot.runner
        # Admitted while the runner was not running them: as after a restart.
        real_start = runner.start
        runner.start = lambda job_id, held=False: None  # type: ignore[method-assign, misc]
        jobs = [await bot.engine.submit(chat(i)) for i in range(12)]
        runner.start = real_start  # type: ignore[method-assign]
        assert await runner.resume() == 12
        while len(surface.deliveries) < 12:
            await until(lambda: len(provider.held) == min(3, 12 - len(provider.released)))
            await release_all(bot, provider)
            target = len(provider.released)
            await until(lambda target=target: len(surface.deliveries) == target)  # type: ignore[misc]
        assert provider.most_held == 3
        assert sorted(job_id for job_id, _ in surface.deliveries) == sorted(job.id for job in jobs)


async def test_queued_jobs_are_told_their_place_as_the_line_moves(tmp_path: Path) -> None:
    clock = Clock()
    surface = TimedSurface(clock)
    async with start(tmp_path, 2, surface, clock=clock) as bot:
        provider = holding(bot)
        jobs = [await bot.engine.submit(chat(i)) for i in range(5)]
        waiting = [job.id for job in jobs[2:]]

        def places() -> dict[str, list[int | None]]:
            told: dict[str, list[int | None]] = {job_id: [] for job_id in waiting}
            for _, job_id, progress in surface.edits:
                if job_id in told and progress.stage == "queued":
                    told[job_id].append(progress.queue_position)
            return told

        await until(lambda: all(places().values()))
        assert places() == {waiting[0]: [1], waiting[1]: [2], waiting[2]: [3]}
        assert len(provider.held) == 2
        assert (await states(bot))[JobState.QUEUED] == 3

        # One finishes: the first waiting job is worked, the others move up and are told so once
        # their interval has passed.
        first = next(iter(provider.held))
        provider.released.add(first)
        bot.runner.wake(provider.held[first])
        await until(lambda: len(surface.deliveries) == 1 and len(provider.held) == 2)
        clock.now += PROGRESS_EVERY + 1
        for job_id in waiting[1:]:
            bot.runner.wake(job_id)
        await until(lambda: len(places()[waiting[2]]) == 2)
        await until(lambda: len(places()[waiting[1]]) == 2)
        assert places()[waiting[1]] == [2, 1] and places()[waiting[2]] == [3, 2]
        assert places()[waiting[0]] == [1]  # now worked: no longer told a place


async def test_a_job_waiting_for_a_slot_still_fails_at_its_deadline(tmp_path: Path) -> None:
    clock = Clock()
    surface = TimedSurface(clock)
    async with start(tmp_path, 1, surface, clock=clock) as bot:
        provider = holding(bot)
        worked = await bot.engine.submit(chat(1))
        # Admitted "earlier" by the clock, so that its deadline passes while the worked job's has not.
        clock.now -= 100
        waiting = await bot.engine.submit(chat(2))
        await until(lambda: len(provider.held) == 1 and any(e[1] == waiting.id for e in surface.edits))
        clock.now = waiting.deadline + 1
        assert clock.now < worked.deadline
        bot.runner.wake(waiting.id)
        await asyncio.wait_for(bot.runner.wait_job(waiting.id), 30)

        stored = await bot.engine.job(waiting.id)
        assert stored is not None and stored.state is JobState.FAILED
        # Told its cause, as stored, and that its quota was given back.
        assert surface.told == [(waiting.id, words.failed(stored.error or ""))]
        assert "took longer than" in (stored.error or "") and surface.told[0][1].endswith("given back.")
        assert waiting.id not in provider.submits  # never reached the provider
        assert (await bot.engine.quota("test", "u2", "w1")).used == 0
        assert list(provider.held.values()) == [worked.id]


async def test_progress_edits_keep_to_the_documented_rate_under_load(tmp_path: Path) -> None:
    """60 jobs at the provider, each woken every half second (of the bot's clock) for 30 s: every
    one wants to show progress each time, but the edits keep to the policy of `bot.jobs.pacing`."""
    clock = Clock()
    surface = TimedSurface(clock)
    jobs_count, steps, step = 60, 60, 0.5
    async with start(tmp_path, jobs_count, surface, clock=clock) as bot:
        provider = holding(bot)
        jobs = [await bot.engine.submit(chat(i)) for i in range(jobs_count)]
        await until(lambda: len(provider.held) == jobs_count)
        began = clock.now
        for _ in range(steps):
            clock.now += step
            reads = provider.status_reads
            for job in jobs:
                bot.runner.wake(job.id)
            # Each woken job reads its status, then shows progress if the gate lets it.
            await until(lambda reads=reads: provider.status_reads >= reads + jobs_count)  # type: ignore[misc]
        span = clock.now - began

    times = sorted(t for t, _, _ in surface.edits)
    assert len(times) >= PROGRESS_RATE * span / 2  # edits did happen, about as many as allowed
    for i, first in enumerate(times):  # the token bucket: never more than burst + rate * time
        for j in range(i, len(times)):
            assert j - i + 1 <= PROGRESS_BURST + PROGRESS_RATE * (times[j] - first) + 1e-9
    interval = ProgressGate(clock).interval(jobs_count)
    assert interval == jobs_count / PROGRESS_RATE > PROGRESS_EVERY
    by_job: dict[str, list[float]] = {}
    for t, job_id, _ in surface.edits:
        by_job.setdefault(job_id, []).append(t)
    for job_id, seen in by_job.items():  # one job: at most one edit per interval
        assert all(b - a >= interval for a, b in itertools.pairwise(seen)), job_id


# --- the pieces on their own -------------------------------------------------------------------


async def test_slots_hand_over_in_order_and_skip_who_left() -> None:
    slots = Slots(2)
    assert slots.take("a") and slots.take("b") and not slots.take("c")
    c, d, e = slots.join("c"), slots.join("d"), slots.join("e")
    assert [slots.position(k) for k in "cde"] == [1, 2, 3] and slots.position("a") is None
    slots.leave("d")  # gave up waiting
    slots.leave("a")
    assert d.cancelled() and c.done() and not e.done() and slots.position("e") == 1
    assert not slots.take("f")  # someone waits: no jumping the line
    slots.leave("b")
    assert e.done() and (slots.active, slots.waiting) == (2, 0)
    with pytest.raises(ValueError):
        Slots(0)


async def test_a_slot_freed_between_a_refused_take_and_the_join_is_handed_over() -> None:
    # The runner awaits the store between `take` and `join`; the last holder may leave meanwhile.
    slots = Slots(1)
    assert slots.take("a") and not slots.take("b")
    slots.leave("a")
    turn = slots.join("b")
    assert turn.done() and (slots.active, slots.waiting) == (1, 0)
    slots.leave("b")
    assert slots.take("c")


def test_gate_spaces_one_job_and_bounds_all() -> None:
    clock = Clock()
    gate = ProgressGate(clock, every=2.0, rate=5.0, burst=5.0, spread=lambda interval: interval / 2)
    assert gate.allow("a", 1) and not gate.allow("a", 1)  # twice at once: the second is skipped
    clock.now += 2.0
    assert gate.allow("a", 1)
    assert gate.allow("a", 1, milestone=True)  # a milestone skips the job's interval
    # Many jobs at once: only what the bucket holds, then its refill rate.
    clock.now += 10
    shown = sum(gate.allow(f"j{i}", 100) for i in range(100))
    assert shown == 5
    clock.now += 1.0
    assert sum(gate.allow(f"k{i}", 100) for i in range(100)) == 5
    assert gate.interval(100) == 20.0 and gate.interval(3) == 2.0
    # A job turned away for want of a token tries again part-way (here half-way) into its interval.
    assert not gate.allow("j99", 100) and gate.next_try("j99", 100) == clock.now - 1.0 + 10.0
    assert not gate.allow("late", 100, milestone=True)  # a milestone still needs a token


def test_the_setting_is_read_and_checked() -> None:
    from bot.model.config import load_settings
    from bot.model.errors import ConfigError

    assert load_settings(HIDREAM_MAX_ACTIVE_JOBS="8").max_active_jobs == 8
    assert load_settings().max_active_jobs == 64
    with pytest.raises(ConfigError, match="HIDREAM_MAX_ACTIVE_JOBS"):
        load_settings(HIDREAM_MAX_ACTIVE_JOBS="0")

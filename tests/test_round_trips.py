"""What one job costs in round trips (issue 13): counted on a whole bot against loopback fakes, never
timed. A signed callback that carries the result leads straight to the download (no status read); a
job's results are kept and the job completed in one transaction, its posts recorded and the job
delivered in another; a job admitted here needs no claim; a progress edit says something new."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.pacing import ProgressGate
from tests.support.holding import Clock
from tests.support.round_trips import counted_bot, one_job


@pytest.mark.parametrize("provider", ["fal", "wavespeed"])
async def test_a_signed_callback_with_the_result_needs_no_status_read(tmp_path: Path, provider: str) -> None:
    async with counted_bot(tmp_path, provider, webhook=True) as (bot, _discord, fake, trips):
        job_id = await one_job(bot, _discord, trips)
        assert fake.status_calls == [] and trips.provider["GET status"] == 0
        assert trips.provider["POST submit"] == 1 and trips.provider["GET download"] == 1
        job = await bot.engine.job(job_id)
        assert job is not None and job.state.value == "delivered"
        merged = {
            name: trips.store_calls[name] for name in ("complete", "delivered", "put_media", "record_posts")
        }
        assert merged == {"complete": 1, "delivered": 1, "put_media": 0, "record_posts": 0}
        # submitting, running, delivering: the only stand-alone moves left (plus the admission).
        assert trips.store_calls["transition"] == 3 and trips.store_calls["admit"] == 1


@pytest.mark.parametrize("provider", ["fal", "wavespeed"])
async def test_polling_reads_status_until_done_and_merges_the_same_steps(
    tmp_path: Path, provider: str
) -> None:
    async with counted_bot(tmp_path, provider, webhook=False) as (bot, discord, fake, trips):
        await one_job(bot, discord, trips)
        assert trips.provider["GET status"] == len(fake.status_calls) == 3  # queued, running, completed
        assert (trips.store_calls["complete"], trips.store_calls["delivered"]) == (1, 1)
        # Admission, submitting, running, completed+results, delivering, posts+delivered: no claim.
        assert trips.transactions == 10
        # The acknowledgement, "Queued", the result in the same message (no "Uploading…" edit before it:
        # the result replaces the line in the next request), the thread.
        assert trips.discord and sum(trips.discord.values()) == 4


def test_progress_that_says_nothing_new_is_not_sent_until_the_heartbeat() -> None:
    clock = Clock()
    gate = ProgressGate(clock, every=2.0, rate=5.0, burst=5.0, heartbeat=10.0)
    running = ("running", None)
    assert gate.allow("a", 1, says=running)
    for _ in range(4):  # every 2 s for 8 s: the interval allows it, but nothing is new
        clock.now += 2.0
        assert not gate.allow("a", 1, says=running)
    clock.now += 2.0  # 10 s since the line was edited: the heartbeat
    assert gate.allow("a", 1, says=running)
    clock.now += 2.0
    assert gate.allow("a", 1, says=("queued", 3))  # news, once the interval allows it
    assert not gate.allow("a", 1, says=("queued", 2), milestone=False)  # news, but too soon
    assert not gate.allow("a", 1, says=("queued", 3), milestone=True)  # a milestone that says nothing new
    # Refusals for want of news took no token: the full bucket (5) less the edit just made.
    assert sum(gate.allow(f"j{i}", 1, says=running) for i in range(6)) == 4

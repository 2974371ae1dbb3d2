"""A provider answers every request with a 200 whose body cannot be read, for a while, then recovers.

Pixazo's fake is set to a fault (tests/fakes/queue_common.py `QueueFake.fault`): JSON cut short, an
HTML error page, or a JSON answer whose connection closes before the Content-Length it announced. What
is simulated of "30 s": the window is open from before the first command to after every command of
the burst has ended and each job that was already at Pixazo has had its status read answered so, and
then closes; no test waits on a clock.

Counted, with failover configured (HIDREAM_PROVIDERS=pixazo,atlascloud) and without: two jobs already
at Pixazo when the window opens are delivered once it closes; each job whose submit was answered so
is failed with its quota given back, never sent to a second provider (Pixazo may have taken it). After
three malformed or HTML answers Pixazo's breaker opens, so with failover the later jobs go to Atlas
Cloud from the start and are delivered once; a body cut mid-way leaves each outcome unknown, which the
breaker does not count (tests/test_routing.py), so those jobs all stay Pixazo's and fail with their
quota given back, as every job does without failover. None is lost,
nothing is charged for a failed job, and Pixazo made no job for any broken answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.model.jobs import Job, JobState
from bot.providers.base import HttpProvider, RetryPolicy
from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.pixazo import PixazoFake
from tests.support.console import KEYS, Console
from tests.support.faults import LogCapture, Tally
from tests.support.harness import BotHarness, until

HELD = 2  # jobs already at Pixazo when the window opens
BURST = 8  # commands sent while it is open
POLL = 1.0  # seconds between status reads at first (then backing off)
BREAKER_OPENS_AFTER = 3  # failures in a row (bot.jobs.routing.FAILURES_TO_OPEN)
# A readable-as-HTTP answer whose body is not the provider's (UnreadableAnswer, a ProviderBusy) counts
# toward the breaker; a body cut mid-way leaves the outcome unknown, which does not.
OPENS_THE_BREAKER = ("malformed", "html")


def env(order: str, pixazo: PixazoFake, atlas: AtlasCloudFake) -> dict[str, Any]:
    return {
        "HIDREAM_PROVIDERS": order,
        "PIXAZO_API_KEY": KEYS["pixazo"],
        "PIXAZO_BASE_URL": pixazo.url,
        "ATLASCLOUD_API_KEY": KEYS["atlascloud"],
        "ATLASCLOUD_BASE_URL": atlas.url,
        "HIDREAM_DAILY_IMAGE_QUOTA": 100,
    }


def one_try(bot: Bot) -> None:
    """One try per request (a broken answer is final at once), and status reads a second apart."""
    for provider in bot.engine.providers.values():
        assert isinstance(provider, HttpProvider)
        provider.retry = RetryPolicy(attempts=1)
        provider.poll_interval = POLL


async def send(bot: Bot, console: Console, line: str) -> str:
    assert console.chat is not None
    await console.chat.handle(line)
    assert console.chat.last_job_id is not None
    return console.chat.last_job_id


@pytest.mark.timeout(180)
@pytest.mark.parametrize("failover", [True, False], ids=["failover", "alone"])
@pytest.mark.parametrize("fault", ["malformed", "html", "cut"])
async def test_a_provider_answering_200_unreadable_loses_and_charges_nothing(
    tmp_path: Path, fault: str, failover: bool
) -> None:
    tally = Tally(f"provider-{fault}-{'failover' if failover else 'alone'}")
    console = Console(tmp_path)
    pixazo, atlas = PixazoFake(api_key=KEYS["pixazo"]), AtlasCloudFake(api_key=KEYS["atlascloud"])
    order = "pixazo,atlascloud" if failover else "pixazo"
    with LogCapture() as logs:
        async with (
            pixazo.running(),
            atlas.running(),
            BotHarness(tmp_path, env(order, pixazo, atlas), [console.factory]) as bot,
        ):
            one_try(bot)
            pixazo.hold()
            held = [await send(bot, console, f"/hidream a lighthouse, number {i}") for i in range(HELD)]
            await until(lambda: len(pixazo.submits) == HELD)
            for job_id in held:
                await until_state(bot, job_id, JobState.RUNNING)

            pixazo.fault = fault  # the window opens
            burst = []
            for i in range(BURST):
                job_id = await send(bot, console, f"/hidream a fox in the snow, number {i}")
                burst.append(job_id)
                if i < BREAKER_OPENS_AFTER:  # one by one until the breaker has seen three; then all at once
                    await bot.runner.wait_job(job_id)
            for job_id in burst:
                await bot.runner.wait_job(job_id)
            # Each held job's status reads met the broken answers too (two apiece) before the window closes.
            await until(lambda: sum(method == "GET" for method, _ in pixazo.faulted) >= 2 * HELD, 60)
            made_in_window = len(pixazo.jobs)
            pixazo.fault = None  # the window closes
            pixazo.release_callbacks()
            for job_id in held:  # read their status now, not after the backed-off interval
                bot.runner.wake(job_id)
            after = await send(bot, console, "/hidream a fox after the window")
            await bot.runner.wait_idle()

            assert made_in_window == HELD, "Pixazo made a job for a broken answer"
            await count(bot, console, tally, [*held, *burst, after])
            tally.extra.update(
                broken_answers=len(pixazo.faulted),
                broken_status_reads=sum(method == "GET" for method, _ in pixazo.faulted),
                pixazo_breaker=bot.engine.provider_health()["pixazo"].state,
                by_provider=dict(Counter(job.provider for job in await jobs(bot))),
            )
            most, text = logs.most_in_a_second()
            tally.max_line_repeats_per_second, tally.repeated_line = most, text
            tally.write()

            # The jobs in flight when the window opened are delivered after it.
            assert [await state_of(bot, job_id) for job_id in held] == [JobState.DELIVERED] * HELD, tally
            states = [await state_of(bot, job_id) for job_id in burst]
            providers = [job.provider for job in await jobs(bot, burst)]
            # The first three submits met the broken answers: failed and refunded, never sent elsewhere.
            opens = BREAKER_OPENS_AFTER
            assert states[:opens] == [JobState.FAILED] * opens, states
            assert providers[:opens] == ["pixazo"] * opens, providers
            if failover and fault in OPENS_THE_BREAKER:
                # Then the breaker is open: the rest went to Atlas Cloud from the start, delivered once.
                assert states[opens:] == [JobState.DELIVERED] * (BURST - opens), states
                assert providers[opens:] == ["atlascloud"] * (BURST - opens), providers
                [last] = await jobs(bot, [after])
                assert len(atlas.submits) == BURST - opens + (last.provider == "atlascloud"), atlas.submits
            else:
                # Alone, or a body cut mid-way (an outcome unknown, which the breaker leaves alone: see
                # tests/test_routing.py): every one stays Pixazo's and fails with its quota given back.
                assert states[opens:] == [JobState.FAILED] * (BURST - opens), states
                assert providers[opens:] == ["pixazo"] * (BURST - opens), providers
                assert atlas.submits == [] or failover, atlas.submits
            assert tally.lost == 0 and tally.unfinished == 0 and tally.delivered_twice_or_more == 0, tally


async def until_state(bot: Bot, job_id: str, state: JobState, within: float = 30.0) -> None:
    """Wait (bounded) until the job is stored in `state`."""
    try:
        async with asyncio.timeout(within):
            while await state_of(bot, job_id) is not state:  # noqa: ASYNC110 (the bot's tasks move it)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"job {job_id} not {state} within {within:.0f} s") from None


async def state_of(bot: Bot, job_id: str) -> JobState | None:
    job = await bot.engine.job(job_id)
    return None if job is None else job.state


async def jobs(bot: Bot, ids: list[str] | None = None) -> list[Job]:
    """The jobs of `ids` (default: every job), as stored."""
    if ids is None:
        ids = [str(r[0]) for r in await bot.store.database.fetch("SELECT id FROM jobs")]
    found = [await bot.engine.job(job_id) for job_id in ids]
    return [job for job in found if job is not None]


async def count(bot: Bot, console: Console, tally: Tally, sent: list[str]) -> None:
    """Each command's outcome: delivered once (one file, its ledger committed), or failed with its
    quota given back (ledger released, its requester told), from the bot's rows and the console."""
    said = console.err.getvalue()
    written = console.out.getvalue().split()
    ledger = {
        str(r[0]): (str(r[1]), int(r[2]))
        for r in await bot.store.database.fetch("SELECT job_id, state, images FROM ledger")
    }
    tally.requests = len(sent)
    tally.admitted = len(ledger)
    for job_id in sent:
        state = await state_of(bot, job_id)
        files = sum(1 for path in written if Path(path).name.startswith(job_id))
        done = said.count(f"[{job_id[:8]}] done:")
        if state is JobState.DELIVERED and files == 1 and done == 1 and ledger[job_id][0] == "committed":
            tally.delivered_once += 1
        elif files > 1 or done > 1:
            tally.delivered_twice_or_more += 1
        elif state is JobState.FAILED and files == 0 and ledger[job_id][0] == "released":
            tally.failed_refunded += 1
        else:
            tally.unfinished += 1
    charged = sum(images for state, images in ledger.values() if state in ("committed", "reserved"))
    assert charged == tally.delivered_once, (charged, tally)
    quota = await bot.engine.quota("console", "local", "local")
    assert quota.used == tally.delivered_once, (quota.used, tally)

"""The database goes away in the middle of a burst of 50 Discord commands, and comes back.

PostgreSQL: the bot reaches the server through `CutProxy` (tests/support/db_outage.py). After the 30th
job is admitted the proxy drops every open connection and resets every new one; the remaining 20
commands arrive during the outage. The provider (fal's fake) holds every job; it answers five during
the outage (their callbacks meet the dead database, as does every waiting job's next step), and the
rest once the database is back.
SQLite: the media folder's disk is full instead (ENOSPC injected where storage/media.py writes an image
file, `FullDisk`), from the 30th admission on, so no result can be kept; the five jobs answered then
try and are refused until the disk has room again.

What is simulated of "10 s": the outage lasts until the bot has shown it met it (its runner said so,
and, for PostgreSQL, it was turned away at least once since), then ends; nothing waits on a clock.

Counted: every command is delivered exactly once, or failed with its quota given back, or was refused
at admission with nothing kept or charged (the person told so); none is lost or left unfinished; no
log line repeats more than once within any second of the records' own timestamps; and a command sent
right after the database is back is delivered within 5 s of the return, measured between the log
records of the return and of that delivery. It is sent while the jobs that waited are still at the
provider (which answers five of them during the outage, the others after that command is delivered),
so the figure is how soon the bot serves again, not how long a backlog of 30 takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter, DiscordSettings
from bot import words
from bot.app import Bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, with_files
from tests.fakes.fal import FalFake
from tests.support.db_outage import CutProxy, FullDisk
from tests.support.faults import LogCapture, Tally
from tests.support.harness import BotHarness, until

BURST = 50
CUT_AFTER = 30
SERVE_WITHIN = 5.0  # seconds from the database's return to the delivery of a command sent then
ANSWERED_IN_OUTAGE = 5  # held jobs whose provider answers during the outage
SETTLE_WITHIN = 120.0
# Callbacks on; a job whose callback found the database away polls fal after this long.
CALLBACK_GRACE = 10.0

marks = logging.getLogger("tests.faults")


def fal_env(provider: FalFake) -> dict[str, Any]:
    return {
        "HIDREAM_PROVIDER": "fal",
        "FAL_KEY": provider.key,
        "FAL_QUEUE_URL": provider.url,
        "FAL_JWKS_URL": provider.jwks_url,
        "FAL_USER_ID": provider.user_id,
        "HIDREAM_DAILY_IMAGE_QUOTA": 1000,
    }


@asynccontextmanager
async def discord_bot(tmp_path: Path, fake: FakeDiscord, env: dict[str, Any]) -> AsyncIterator[Bot]:
    settings = {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        **env,
    }

    def factory(bot: Bot) -> DiscordAdapter:
        return DiscordAdapter(bot.engine, bot.settings.section(DiscordSettings), guild_ready_timeout=0.05)

    async with BotHarness(
        tmp_path, settings, [factory], callbacks=True, callback_grace=CALLBACK_GRACE
    ) as bot:
        await fake.wait_for(lambda: fake.identifies)
        yield bot


def slash(fake: FakeDiscord, i: int) -> dict[str, Any]:
    return fake.slash_payload({"prompt": f"a fox in the snow, number {i}", "size": "256x256"})


def job_of(result: dict[str, Any]) -> str:
    """The job a result message carries: its buttons' custom ids name it (`hidream:<action>:<job>`)."""
    (job_id,) = {c.split(":")[2] for c in custom_ids(result) if c.count(":") >= 2}
    return job_id


def results_of(fake: FakeDiscord, job_id: str) -> list[dict[str, Any]]:
    """The messages that carry the job's images (their buttons name it)."""
    return [m for m in fake.messages.values() if with_files(m) and any(job_id in c for c in custom_ids(m))]


async def burst_through_outage(
    fake: FakeDiscord,
    bot: Bot,
    provider: FalFake,
    logs: LogCapture,
    *,
    cut: Callable[[], None],
    observed: Callable[[], bool],
    restore: Callable[[], None],
    tally: Tally,
) -> None:
    provider.hold()
    for i in range(BURST):
        if i == CUT_AFTER:
            # Cut once 30 are admitted and asked of the provider (which holds them).
            await logs.wait_for("bot.jobs.engine", " admitted: ", CUT_AFTER)
            await until(lambda: len(provider.submits) == CUT_AFTER, 60)
            cut()
            marks.info("outage begins")
        await fake.interact(slash(fake, i))
    # Some jobs are answered during the outage: their callbacks (and, on SQLite, their results) meet it.
    answered = provider.post_held(ANSWERED_IN_OUTAGE)
    await until(lambda: sum(1 for url, _ in provider.callbacks_sent if url in answered) == len(answered), 60)
    # The bot met the outage: its runner said so (once), and it was turned away at least once since.
    await logs.wait_for("bot.jobs.runner", "the database cannot be reached or written")
    await until(observed, 60)
    # Every command of the burst was handled (admitted, or refused) before the database returns, and
    # every job admitted was asked of the provider: what is left to do is what the outage held up.
    await until(lambda: len(fake.acks) == BURST, 60)
    await until(lambda: len(provider.submits) == len(logs.matching("bot.jobs.engine", " admitted: ")), 60)
    restore()
    marks.info("database back")
    back = logs.matching("tests.faults", "database back")[-1]

    # A new command now is served while the jobs that waited are still at the provider: how soon the bot
    # serves again, not how long a backlog takes (that is counted below, after they are answered).
    provider.hold_only_these()
    after = await fake.interact(slash(fake, BURST))
    await fake.wait_for(
        lambda: with_files(fake.messages.get(fake.originals.get(after["token"], ""), {})), SETTLE_WITHIN
    )
    job_id = job_of(fake.messages[fake.originals[after["token"]]])
    delivered = await logs.wait_for("bot.jobs.delivery", f"job {job_id} delivered")
    tally.serve_after_return_s = round(delivered.created - back.created, 3)
    provider.release_callbacks()

    await until_settled(bot)
    await count(fake, bot, logs, tally, requests=BURST + 1)


async def until_settled(bot: Bot) -> None:
    """Every job finished (bounded wait; fails naming what is left)."""
    left: list[Any] = []
    try:
        async with asyncio.timeout(SETTLE_WITHIN):
            while left := await bot.store.unfinished_jobs():  # noqa: ASYNC110 (the bot's tasks finish them)
                await asyncio.sleep(0.2)
    except TimeoutError:
        states = sorted(str(job.state) for job in left)
        raise AssertionError(
            f"unfinished {SETTLE_WITHIN:.0f} s after the database came back: {states}"
        ) from None


async def count(fake: FakeDiscord, bot: Bot, logs: LogCapture, tally: Tally, *, requests: int) -> None:
    jobs = await bot.store.database.fetch("SELECT id, state FROM jobs")
    ledger = {
        str(r[0]): (str(r[1]), int(r[2]))
        for r in await bot.store.database.fetch("SELECT job_id, state, images FROM ledger")
    }
    tally.requests = requests
    tally.admitted = len(jobs)
    for job_id, state in ((str(r[0]), str(r[1])) for r in jobs):
        posted = len(results_of(fake, job_id))
        if state == "delivered" and posted == 1 and ledger[job_id][0] == "committed":
            tally.delivered_once += 1
        elif posted > 1:
            tally.delivered_twice_or_more += 1
        elif state == "failed" and posted == 0 and ledger[job_id][0] == "released":
            tally.failed_refunded += 1
        else:
            tally.unfinished += 1
    tally.refused_nothing_charged = fake.ephemeral_texts().count(words.STORE_UNAVAILABLE)
    most, text = logs.most_in_a_second()
    tally.max_line_repeats_per_second, tally.repeated_line = most, text
    tally.write()

    assert tally.delivered_twice_or_more == 0 and tally.unfinished == 0, tally
    assert tally.lost == 0, tally
    # Nothing charged but what was delivered: the quota in use is the images delivered.
    charged = sum(images for state, images in ledger.values() if state in ("committed", "reserved"))
    assert charged == tally.delivered_once, (charged, tally)
    assert most <= 1, f"a log line repeated {most} times within one second: {text!r}"
    assert tally.serve_after_return_s is not None and tally.serve_after_return_s <= SERVE_WITHIN, (
        f"a command sent as the database came back was delivered {tally.serve_after_return_s} s after "
        f"its return (the bot's own log times), more than {SERVE_WITHIN} s"
    )


@pytest.mark.timeout(300)
async def test_postgres_cut_mid_burst_every_job_delivered_once_or_refunded(
    tmp_path: Path, pg_url: str
) -> None:
    tally = Tally("database-postgres-cut")
    with LogCapture() as logs:
        async with (
            CutProxy("127.0.0.1", 5432) as proxy,
            FalFake().started() as provider,
            FakeDiscord() as fake,
            discord_bot(
                tmp_path, fake, {**fal_env(provider), "HIDREAM_DATABASE_URL": proxy.url_for(pg_url)}
            ) as bot,
        ):
            dropped_before = proxy.dropped
            await burst_through_outage(
                fake, bot, provider, logs,
                cut=proxy.cut, observed=lambda: proxy.refused > 0, restore=proxy.restore, tally=tally,
            )  # fmt: skip
            tally.extra.update(
                connections_dropped=proxy.dropped - dropped_before, connections_refused=proxy.refused
            )
            tally.write()
            # Some commands met the outage at admission and were told so, with nothing kept.
            assert tally.refused_nothing_charged > 0, tally
            assert proxy.dropped > dropped_before and proxy.refused > 0


@pytest.mark.timeout(300)
async def test_sqlite_disk_full_mid_burst_every_job_delivered_once_or_refunded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tally = Tally("database-sqlite-disk-full")
    disk = FullDisk(monkeypatch)

    def fill() -> None:
        disk.full = True

    def empty() -> None:
        disk.full = False

    with LogCapture() as logs:
        async with (
            FalFake().started() as provider,
            FakeDiscord() as fake,
            discord_bot(tmp_path, fake, fal_env(provider)) as bot,
        ):
            await burst_through_outage(
                fake, bot, provider, logs,
                cut=fill, observed=lambda: disk.failed > 0, restore=empty, tally=tally,
            )  # fmt: skip
            tally.extra.update(image_writes_refused=disk.failed)
            tally.write()
            assert disk.failed > 0

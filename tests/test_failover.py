"""Several providers end to end: the whole bot on the console, with HIDREAM_PROVIDERS naming the
Pixazo and Atlas Cloud fakes (the real provider clients talk to them). A refused submit moves the job
to the next provider exactly once, the breaker skips a failing provider and lets one trial through
after its cool-down, an unknown outcome is never sent elsewhere, `--provider` picks, and the result
names the provider that made it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Bot
from bot.jobs.routing import CircuitBreaker
from bot.model.jobs import JobState
from bot.providers.base import HttpProvider, RetryPolicy
from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.pixazo import PixazoFake
from tests.support.console import KEYS, Console
from tests.support.harness import BotHarness, closed_port, sqlite_of
from tests.support.routing import Clock

PRICE = {"pixazo": 0.01, "atlascloud": 0.044}


@asynccontextmanager
async def two_fakes() -> AsyncIterator[tuple[PixazoFake, AtlasCloudFake]]:
    pixazo, atlas = PixazoFake(api_key=KEYS["pixazo"]), AtlasCloudFake(api_key=KEYS["atlascloud"])
    async with pixazo.running(), atlas.running():
        yield pixazo, atlas


def env(order: str, pixazo_url: str, atlas_url: str) -> dict[str, Any]:
    return {
        "HIDREAM_PROVIDERS": order,
        "PIXAZO_API_KEY": KEYS["pixazo"],
        "PIXAZO_BASE_URL": pixazo_url,
        "ATLASCLOUD_API_KEY": KEYS["atlascloud"],
        "ATLASCLOUD_BASE_URL": atlas_url,
    }


def quick(bot: Bot) -> None:
    """One try per submit (a refusal is final at once) and fast polling: the same steps, sooner."""
    for provider in bot.engine.providers.values():
        assert isinstance(provider, HttpProvider)
        provider.retry = RetryPolicy(attempts=1)
        provider.poll_interval = 0.01


async def ledger(bot: Bot, job_id: str) -> tuple[float, str]:
    async with sqlite_of(bot.store).db.execute(
        "SELECT cost_usd, state FROM ledger WHERE job_id=?", (job_id,)
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return round(float(row[0]), 6), str(row[1])


async def last_job(bot: Bot, console: Console) -> Any:
    assert console.chat is not None and console.chat.last_job_id is not None
    job = await bot.engine.job(console.chat.last_job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("refusal", [402, 429, 500, "unreachable"])
async def test_a_refused_submit_is_made_by_the_next_provider_exactly_once(
    tmp_path: Path, refusal: Any
) -> None:
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        pixazo_url = f"http://127.0.0.1:{closed_port()}" if refusal == "unreachable" else pixazo.url
        if refusal != "unreachable":
            pixazo.fail_next(refusal)
        async with BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo_url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            made = await console.run(bot, "/hidream a red fox in snow --seed 3")
            job = await last_job(bot, console)
            assert len(made) == 1, console.err.getvalue()
            assert len(pixazo.submits) == (0 if refusal == "unreachable" else 1)
            assert len(atlas.submits) == 1
            assert (job.state, job.provider, job.cost_usd) == (
                JobState.DELIVERED,
                "atlascloud",
                PRICE["atlascloud"],
            )
            assert await ledger(bot, job.id) == (PRICE["atlascloud"], "committed")
            said = console.err.getvalue()
            assert said.count(f"[{job.id[:8]}] done:") == 1
            assert f"[{job.id[:8]}] done: 1 image(s) by atlascloud" in said
            assert "out of credit" not in said and "busy" not in said  # the refusal was not the user's news
            quota = await bot.engine.quota("console", "local", "local")
            assert quota.used == 1


async def test_a_failure_burst_opens_the_breaker_and_it_half_opens_after_the_cool_down(
    tmp_path: Path,
) -> None:
    console = Console(tmp_path)
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cool_down=60.0, clock=clock)
    async with two_fakes() as (pixazo, atlas):
        harness = BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory], breaker=breaker
        )
        async with harness as bot:
            quick(bot)
            for turn in range(1, 4):
                pixazo.fail_next(503)
                assert len(await console.run(bot, f"/hidream fox number {turn}")) == 1
                assert (len(pixazo.submits), len(atlas.submits)) == (turn, turn)
                assert (await last_job(bot, console)).provider == "atlascloud"
            assert bot.engine.provider_health()["pixazo"].state == "open"
            assert bot.engine.provider_health()["atlascloud"].state == "closed"
            # Operators see it: /metrics and the operators' page's figures.
            scraped = {
                (m.name, tuple(sorted(m.labels.items()))): m.value
                for family in text_string_to_metric_families((await bot.engine.metrics.render()).decode())
                for m in family.samples
            }
            assert scraped[("hidream_provider_breaker", (("provider", "pixazo"), ("state", "open")))] == 1
            assert (
                scraped[("hidream_provider_breaker", (("provider", "atlascloud"), ("state", "closed")))] == 1
            )
            assert scraped[("hidream_provider_failures_in_a_row", (("provider", "pixazo"),))] == 3

            # Open: straight to Atlas Cloud, Pixazo not touched.
            assert len(await console.run(bot, "/hidream fox number 4")) == 1
            assert (len(pixazo.submits), len(atlas.submits)) == (3, 4)

            # After the cool-down one trial goes to Pixazo; it succeeds and closes the breaker.
            clock.now += 60
            assert bot.engine.provider_health()["pixazo"].state == "half-open"
            assert len(await console.run(bot, "/hidream fox number 5")) == 1
            job = await last_job(bot, console)
            assert (job.provider, len(pixazo.submits), len(atlas.submits)) == ("pixazo", 4, 4)
            assert bot.engine.provider_health()["pixazo"].state == "closed"
            assert "done: 1 image(s) by pixazo" in console.err.getvalue()


async def test_an_answer_lost_after_the_submit_is_never_sent_elsewhere(tmp_path: Path) -> None:
    """Pixazo makes the job and the connection drops before its answer: the job is Pixazo's (its
    callback recovers it), and Atlas Cloud never sees it."""
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        pixazo.fail_next("lost")
        harness = BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory], callbacks=True
        )
        async with harness as bot:
            quick(bot)
            made = await console.run(bot, "/hidream a harbour at dawn")
            job = await last_job(bot, console)
            assert len(made) == 1, console.err.getvalue()
            assert (len(pixazo.submits), atlas.submits) == (1, [])
            assert (job.state, job.provider) == (JobState.DELIVERED, "pixazo")
            assert await ledger(bot, job.id) == (PRICE["pixazo"], "committed")


async def test_a_dropped_submit_fails_there_and_is_not_resent(tmp_path: Path) -> None:
    """No callbacks, and the connection closed after the request was read: the outcome is unknown,
    so the job is failed and refunded rather than sent to a second provider."""
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        pixazo.fail_next("drop")
        async with BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            assert await console.run(bot, "/hidream a harbour at dusk") == []
            job = await last_job(bot, console)
            assert (len(pixazo.submits), atlas.submits) == (1, [])
            assert (job.state, job.provider) == (JobState.FAILED, "pixazo")
            assert "not sent again" in console.err.getvalue()
            assert (await bot.engine.quota("console", "local", "local")).used == 0


async def test_a_job_with_requests_already_made_stays_with_its_provider(tmp_path: Path) -> None:
    """Atlas Cloud makes one image a request: the first of two is made, the second refused (402).
    The made one is billed at Atlas Cloud, so the job is not moved to Pixazo."""
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        atlas.fail_next(None, 402)
        async with BotHarness(
            tmp_path, env("atlascloud,pixazo", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            assert await console.run(bot, "/hidream two foxes --n 2") == []
            job = await last_job(bot, console)
            assert (len(atlas.submits), pixazo.submits) == (2, [])
            assert (job.state, job.provider) == (JobState.FAILED, "atlascloud")
            assert "out of credit" in console.err.getvalue()


async def test_provider_flag_picks_one_and_keeps_the_job_there(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        async with BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            assert len(await console.run(bot, "/hidream a red fox --provider atlascloud")) == 1
            job = await last_job(bot, console)
            assert (job.provider, job.cost_usd, pixazo.submits, len(atlas.submits)) == (
                "atlascloud",
                PRICE["atlascloud"],
                [],
                1,
            )
            assert "done: 1 image(s) by atlascloud" in console.err.getvalue()

            # Named explicitly, it is not swapped for another when it refuses.
            pixazo.fail_next(402)
            assert await console.run(bot, "/hidream a blue fox --provider pixazo") == []
            job = await last_job(bot, console)
            assert (job.state, job.provider, len(pixazo.submits), len(atlas.submits)) == (
                JobState.FAILED,
                "pixazo",
                1,
                1,
            )
            assert "out of credit" in console.err.getvalue()


async def test_an_unconfigured_provider_flag_is_refused_with_nothing_spent(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        async with BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            assert await console.run(bot, "/hidream a red fox --provider fal") == []
            assert (
                "✗ --provider fal is not configured here: use pixazo or atlascloud." in console.err.getvalue()
            )
            assert console.chat is not None and console.chat.last_job_id is None
            assert (pixazo.submits, atlas.submits) == ([], [])
            assert (await bot.engine.quota("console", "local", "local")).used == 0


async def test_routing_skips_a_provider_that_cannot_serve_the_request(tmp_path: Path) -> None:
    """No public URL: Pixazo cannot take an edit's images, so the edit goes to the sandbox, which
    takes them inline; a plain request still goes to Pixazo, the first."""
    console = Console(tmp_path)
    async with PixazoFake(api_key=KEYS["pixazo"]).running() as pixazo:
        settings = {"HIDREAM_PROVIDERS": "pixazo,sandbox", "PIXAZO_API_KEY": KEYS["pixazo"]}
        async with BotHarness(
            tmp_path, {**settings, "PIXAZO_BASE_URL": pixazo.url}, [console.factory]
        ) as bot:
            quick(bot)
            assert len(await console.run(bot, "/hidream a lighthouse")) == 1
            assert (await last_job(bot, console)).provider == "pixazo"
            assert len(await console.run(bot, "/edit last make it night")) == 1
            assert (await last_job(bot, console)).provider == "sandbox"
            assert len(pixazo.submits) == 1
            assert "done: 1 image(s) by sandbox" in console.err.getvalue()


async def test_a_failover_that_would_pass_the_budget_is_not_made(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        pixazo.fail_next(402)
        async with BotHarness(
            tmp_path, env("pixazo,atlascloud", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            # $0.02 a month: Pixazo's $0.01 fits, Atlas Cloud's $0.044 does not.
            await bot.store.set_budget("console:local", 0.02)
            await console.run(bot, "/hidream a red fox in snow --seed 3")
            job = await last_job(bot, console)
            assert len(pixazo.submits) == 1 and len(atlas.submits) == 0
            assert job.state is JobState.FAILED and job.provider == "pixazo"
            assert await ledger(bot, job.id) == (PRICE["pixazo"], "released")
            status = await bot.engine.quota("console", "local", "local")
            assert status.month_spent_usd == 0


async def test_a_job_sent_to_a_later_provider_fails_over_to_an_earlier_one_once(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with two_fakes() as (pixazo, atlas):
        # The person names nothing; the tenant prefers Pixazo, listed second. Both refuse the first time.
        pixazo.fail_next(402)
        atlas.fail_next(402)
        async with BotHarness(
            tmp_path, env("atlascloud,pixazo", pixazo.url, atlas.url), [console.factory]
        ) as bot:
            quick(bot)
            await bot.engine.admin_policy("console", "local", "provider pixazo")
            await console.run(bot, "/hidream a red fox in snow --seed 3")
            job = await last_job(bot, console)
            # Pixazo refused, Atlas Cloud (earlier in the list) was tried, refused too, and the job
            # was not sent back to Pixazo: one submit each, then a plain failure.
            assert (len(pixazo.submits), len(atlas.submits)) == (1, 1)
            assert job.state is JobState.FAILED
            pixazo_second = len(pixazo.submits)
            await console.run(bot, "/hidream a red fox in snow --seed 4")
            made = await last_job(bot, console)
            assert made.state is JobState.DELIVERED and made.provider == "pixazo"
            assert len(pixazo.submits) == pixazo_second + 1

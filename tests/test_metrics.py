"""`GET /metrics`: read with prometheus_client's own parser, its counters moved by real jobs on the
sandbox (delivered, failed by the provider, refused by a quota and a budget, callbacks genuine and
forged), the operators' token when one is set, and the database's figures alike on two replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Bot
from bot.model.errors import QuotaExceeded
from bot.model.jobs import JobState
from bot.model.requests import ImageRequest, Tier
from bot.providers.sandbox.provider import SandboxProvider
from tests.fakes.surface import RecordingSurface
from tests.support.engine import chat
from tests.support.harness import BotHarness, sandbox_of, until
from tests.support.holding import HoldingProvider, release_all
from tests.support.holding import chat as numbered_chat
from tests.support.replicas import replica

COST = 0.04


class Scrape:
    """One scrape of /metrics, as Prometheus would parse it."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when no sample has these labels (a counter not yet moved)."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
        return found[0] if found else 0.0


async def scrape(bot: Bot, **headers: str) -> Scrape:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{bot.server_url}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(answer.text)


class PricedSandbox(SandboxProvider):
    """The sandbox at a price, so that spend and budgets have dollars to count."""

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return COST * request.n


def priced(bot: Bot) -> None:
    bot.engine.providers["sandbox"] = PricedSandbox(
        bot.settings, bot.http, base_url=f"{bot.server_url}/sandbox", token=sandbox_of(bot).token
    )


async def test_counters_move_with_jobs_refusals_and_callbacks(tmp_path: Path) -> None:
    surface = RecordingSurface()
    env = {"HIDREAM_DAILY_IMAGE_QUOTA": 3}
    # Callbacks on, with an hour's grace: jobs finish on the sandbox's callbacks, never a safety poll.
    async with BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600) as bot:
        priced(bot)
        before = await scrape(bot)
        assert before.value("hidream_jobs_total", state="delivered") == 0
        await bot.store.set_budget("test:w1", 2.5 * COST)
        failed = await bot.engine.submit(chat("sandbox-fail please"))
        await bot.runner.wait_idle()  # failed, its reservation given back before the others reserve
        delivered = [await bot.engine.submit(chat(f"a fox {i} --seed {i}")) for i in range(2)]
        await bot.runner.wait_idle()
        with pytest.raises(QuotaExceeded):  # 2 images spent of a budget of 2.5: a third is too many
            await bot.engine.submit(chat("one more"))
        with pytest.raises(QuotaExceeded):  # another tenant, no budget: 4 images of a daily 3
            await bot.engine.submit(
                chat("four at once --n 4", user="u2").model_copy(update={"workspace_id": "w2"})
            )
        after = await scrape(bot)

        assert sorted(job_id for job_id, _ in surface.deliveries) == sorted(j.id for j in delivered)
        assert surface.told and surface.told[0][0] == failed.id
        assert after.value("hidream_jobs_total", state="delivered", provider="sandbox") == 2
        assert after.value("hidream_jobs_total", state="failed", provider="sandbox") == 1
        assert after.value("hidream_deliver_seconds_count", provider="sandbox") == 2
        assert after.value("hidream_deliver_seconds_bucket", provider="sandbox", le="+Inf") == 2
        assert after.value("hidream_provider_errors_total", provider="sandbox", error="GenerationFailed") == 1
        assert after.value("hidream_quota_refusals_total", limit="budget") == 1
        assert after.value("hidream_quota_refusals_total", limit="user") == 1
        assert after.value("hidream_quota_refusals_total", limit="tenant") == 0
        # Each job finished on the sandbox's callback (with an hour's grace, nothing else could).
        assert after.value("hidream_callbacks_total", outcome="accepted") >= 3
        # The database's figures: nothing waits; two images spent, at the sandbox's price.
        assert after.value("hidream_queue_depth") == 0
        assert after.value("hidream_jobs_unfinished", state="running") == 0
        assert after.value("hidream_active_jobs") == 0
        assert after.value("hidream_images_spent", provider="sandbox", period="today") == 2
        assert after.value("hidream_images_spent", provider="sandbox", period="total") == 2
        assert after.value("hidream_spend_usd", provider="sandbox", period="total") == pytest.approx(2 * COST)

        # A genuine repeat is accepted (and changes nothing); a forged token is refused, with its reason.
        async with httpx.AsyncClient() as client:
            repeat = await client.post(f"{bot.server_url}/webhooks/{delivered[0].callback_token}", json={})
            forged = await client.post(f"{bot.server_url}/webhooks/forged-token", json={})
        assert (repeat.status_code, forged.status_code) == (200, 404)
        last = await scrape(bot)
        accepted = after.value("hidream_callbacks_total", outcome="accepted")
        assert last.value("hidream_callbacks_total", outcome="accepted") == accepted + 1
        assert last.value("hidream_callbacks_total", outcome="refused", reason="unknown_token") == 1
        assert (
            last.value("hidream_jobs_total", state="delivered", provider="sandbox") == 2
        )  # a repeat changes nothing


async def test_metrics_ask_for_the_operators_token_when_one_is_set(tmp_path: Path) -> None:
    token = "metrics-token-0123456789"
    async with BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": token}) as bot:
        async with httpx.AsyncClient() as client:
            url = f"{bot.server_url}/metrics"
            bare = await client.get(url)
            wrong = await client.get(url, headers={"Authorization": "Bearer not-the-token"})
            basic = await client.get(url, headers={"Authorization": f"Basic {token}"})
        for refused in (bare, wrong, basic):
            assert refused.status_code == 401
            assert "hidream_" not in refused.text and token not in refused.text
        assert bare.headers["WWW-Authenticate"].startswith("Bearer")
        got = await scrape(bot, Authorization=f"Bearer {token}")
        assert "hidream_jobs" in got.families and got.value("hidream_queue_depth") == 0


async def test_wrong_tokens_at_metrics_are_limited_but_the_right_one_is_not(tmp_path: Path) -> None:
    token = "metrics-token-0123456789"
    async with BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": token}) as bot:
        async with httpx.AsyncClient() as client:
            url = f"{bot.server_url}/metrics"
            # A scraper given no token yet is refused, not counted as guessing.
            for _ in range(12):
                assert (await client.get(url)).status_code == 401
            for n in range(10):
                wrong = await client.get(url, headers={"Authorization": f"Bearer guess-{n:04}-0123456789"})
                assert wrong.status_code == 401
            limited = await client.get(url, headers={"Authorization": "Bearer guess-9999-0123456789"})
            assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 300
            assert "hidream_" not in limited.text and token not in limited.text
            # The sign-in form shares the count: guessing costs the same at either door.
            form = await client.post(f"{bot.server_url}/admin/login", data={"token": "guess-8888-0123456789"})
            assert form.status_code == 429
        got = await scrape(bot, Authorization=f"Bearer {token}")
        assert "hidream_jobs" in got.families


async def test_two_replicas_report_the_databases_figures_alike(tmp_path: Path, pg_url: str) -> None:
    """Each replica counts what it did; what only the database knows (the queue, running jobs, images
    spent) is the same on both, whichever one Prometheus asks."""
    surface, other_surface = RecordingSurface(), RecordingSurface()
    async with (
        replica(tmp_path, "a", pg_url, surface, HIDREAM_MAX_ACTIVE_JOBS=1) as a,
        replica(tmp_path, "b", pg_url, other_surface) as b,
    ):
        held = HoldingProvider()
        a.engine.providers["sandbox"] = held
        b.engine.providers["sandbox"] = HoldingProvider()
        jobs = [await a.engine.submit(numbered_chat(i)) for i in range(3)]
        await until(lambda: len(held.held) == 1)
        # The provider has it; its move to `running` is written just after the submit returns (by the
        # bot's own task, hence a bounded poll).
        (running,) = held.held.values()
        async with asyncio.timeout(60):
            while (job := await a.engine.job(running)) is None or job.state is not JobState.RUNNING:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        for bot in (a, b):
            seen = await scrape(bot)
            assert seen.value("hidream_queue_depth") == 2  # a holds one slot: the other two wait
            assert seen.value("hidream_jobs_unfinished", state="queued") == 2
            assert seen.value("hidream_jobs_unfinished", state="running") == 1
        assert (await scrape(a)).value("hidream_active_jobs") == 1
        assert (await scrape(b)).value("hidream_active_jobs") == 0

        while len(surface.deliveries) < 3:
            await until(lambda: len(held.held) == 1 or len(surface.deliveries) == 3)
            await release_all(a, held)
            await until(lambda: not held.held or len(surface.deliveries) == 3)
        await a.runner.wait_idle()
        assert sorted(j for j, _ in surface.deliveries) == sorted(j.id for j in jobs)
        first, second = await scrape(a), await scrape(b)
        for seen in (first, second):
            assert seen.value("hidream_queue_depth") == 0
            assert seen.value("hidream_images_spent", provider="sandbox", period="total") == 3
        # Process counters: a delivered all three, b none; their sum is the whole.
        assert first.value("hidream_jobs_total", state="delivered", provider="sandbox") == 3
        assert second.value("hidream_jobs_total", state="delivered", provider="sandbox") == 0
        assert first.value("hidream_deliver_seconds_count", provider="sandbox") == 3


async def test_metrics_leave_out_the_created_series(tmp_path: Path) -> None:
    # prometheus_client adds `<counter>_created` (a timestamp) to every counter and histogram child:
    # `hidream_jobs_created 1.7e9` reads like a count of jobs. The text carries none of them.
    async with BotHarness(tmp_path, {}, [RecordingSurface().factory]) as bot:
        await bot.engine.submit(chat("a fox --seed 1"))
        await bot.runner.wait_idle()
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{bot.server_url}/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The counters and the histogram are there, moved by the job, with their ordinary samples.
    assert 'hidream_jobs_total{provider="sandbox",state="delivered"} 1.0' in text
    assert 'hidream_deliver_seconds_count{provider="sandbox"} 1.0' in text
    assert (
        families["hidream_jobs"].type == "counter" and families["hidream_deliver_seconds"].type == "histogram"
    )
    assert "_created" not in text, [line for line in text.splitlines() if "_created" in line]

"""Proof on real processes (Slack): three `hidream-bot run` replicas on one PostgreSQL database behind a
round-robin proxy, WaveSpeed's fake on loopback and Slack's fake in HTTP mode. A burst of 30 slash
commands; one replica is SIGKILLed while every job is in flight at the provider; then the provider
finishes. Every job is posted exactly once, none is lost, the quota is exact, and nothing was sent to
the provider twice (INTERFACE.md: several replicas on one PostgreSQL database)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.slack import FakeSlack
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.replica_checks import (
    SETTLE_WITHIN,
    Figures,
    quota_show,
    settle,
    submits_per_job,
    wavespeed_env,
)
from tests.support.replicas import JobRows, Proxy, Replicas, all_in, owned_by, prompt_of
from tests.support.slack_support import HttpSender, file_messages, job_id_of, summaries

BURST = 30
QUOTA = 40


@dataclass
class World:
    slack: FakeSlack
    provider: WaveSpeedFake
    proxy: Proxy
    replicas: Replicas
    rows: JobRows
    url: str


def replica_env(slack: FakeSlack, provider: WaveSpeedFake, proxy: Proxy, url: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_BASE_URL": slack.api_url,
        **wavespeed_env(provider, proxy, url, QUOTA),
    }


@asynccontextmanager
async def world(tmp_path: Path, url: str, count: int) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(FakeSlack())
        provider = await stack.enter_async_context(WaveSpeedFake().started())
        proxy = await stack.enter_async_context(Proxy())
        env = replica_env(slack, provider, proxy, url)
        replicas = await stack.enter_async_context(Replicas(tmp_path, proxy, [env] * count))
        yield World(slack, provider, proxy, replicas, JobRows(url), url)


@pytest.mark.timeout(SETTLE_WITHIN + 90)
async def test_three_replicas_one_killed_mid_burst_post_every_job_exactly_once(
    tmp_path: Path, pg_url: str
) -> None:
    figures = Figures("slack: 3 replicas, 1 SIGKILLed", tmp_path)
    async with world(tmp_path, pg_url, 3) as w, httpx.AsyncClient(timeout=30) as http:
        w.provider.hold()  # every job stays at work until the test says so
        sender = HttpSender(w.slack, f"{w.proxy.url}/slack/events", http)
        prompts = [f"a lighthouse number {i}" for i in range(BURST)]
        acks = await asyncio.gather(*(sender.command(w.slack.slash(p)) for p in prompts))
        assert acks == [200] * BURST
        # In flight: every job stored and submitted (its submit answered), none finished.
        before = await w.rows.wait(lambda rows: all_in(rows, BURST, "running"), 60, "all running")
        assert len(w.provider.submits) == BURST

        # The victim is replica 0, which holds the leases of some of them (those it took from the burst).
        victim_ids = owned_by(before, w.replicas[0])
        assert victim_ids, [r["owner"] for r in before]
        killed_at = await w.replicas.kill(0)
        w.provider.release_callbacks()

        # The survivors finish every job, the dead replica's too.
        rows, taken = await settle(w.rows, before, victim_ids, killed_at)
        figures.add(jobs=len(rows), kills=1, victim_jobs=len(victim_ids), **taken)

        assert all_in(rows, BURST, "delivered"), w.replicas.logs()
        assert sorted(prompt_of(r) for r in rows) == sorted(prompts)  # none lost, none made twice
        posted = await posts_per_job(w.slack, {r["id"] for r in rows})
        duplicates = sum(n - 1 for n in posted.values() if n > 1)
        lost = sum(1 for n in posted.values() if n == 0)
        figures.add(duplicates=duplicates, lost=lost)
        assert duplicates == 0 and lost == 0, posted

        # The provider was asked once per job, the dead replica's included; each callback was taken.
        assert [status for _, status in w.provider.callbacks_sent] == [200] * BURST
        asked = submits_per_job(w.provider)
        assert asked == collections.Counter({r["callback_token"]: 1 for r in rows})
        ledger = await w.rows.fetch("SELECT state, images FROM ledger")
        assert sorted((r["state"], r["images"]) for r in ledger) == [("committed", 1)] * BURST
        shown = await quota_show(w.url, tmp_path, "slack:UALICE01", QUOTA)
        assert f"{BURST} used of {QUOTA} today, {QUOTA - BURST} left" in shown, shown
        figures.write()


async def posts_per_job(slack: FakeSlack, job_ids: set[str]) -> dict[str, int]:
    """For each job: how many result messages it has, each with its one image in its thread."""
    counts = dict.fromkeys(job_ids, 0)
    for summary in summaries(slack):
        job_id = job_id_of(summary)
        files = [f for m in file_messages(slack, summary["thread_ts"]) for f in m["files"]]
        assert len(files) == 1 and files[0]["name"].startswith(f"hidream-{job_id}-"), files
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts

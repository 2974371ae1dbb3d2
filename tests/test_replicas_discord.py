"""Proof on real processes (Discord): two `hidream-bot run` replicas on one PostgreSQL database, each
running one of 2 gateway shards against Discord's fake (which sends a server's events to the shard that
owns it: `(guild_id >> 22) % 2`), behind a round-robin proxy for provider callbacks. A burst of
commands in two servers, one on each shard; the replica of shard 0 is SIGKILLed while every job is in
flight; the survivor takes its jobs over and posts them over REST, each exactly once. The dead shard's
server has no gateway any more, so its buttons cannot be answered; the other server's still work."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, with_files
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.discord import CHANNEL_B, GUILD_B, two_guilds
from tests.support.replica_checks import (
    SETTLE_WITHIN,
    Figures,
    quota_show,
    settle,
    submits_per_job,
    wavespeed_env,
)
from tests.support.replicas import JobRows, Proxy, Replicas, all_in, owned_by, prompt_of

PER_GUILD = 8
QUOTA = 40
USER = "1500000000000000001"


def shard_env(fake: FakeDiscord, shard: int) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_SHARD_COUNT": "2",
        "DISCORD_SHARD_IDS": str(shard),
    }


def results_of(fake: FakeDiscord, job_id: str) -> list[dict[str, Any]]:
    """The messages that carry the job's images (its buttons name it)."""
    return [m for m in fake.messages.values() if with_files(m) and any(job_id in c for c in custom_ids(m))]


async def burst(fake: FakeDiscord, prompts: list[str], channel_id: str) -> list[dict[str, Any]]:
    return [await fake.interact(fake.slash_payload({"prompt": p}, channel_id=channel_id)) for p in prompts]


@pytest.mark.timeout(SETTLE_WITHIN + 90)
async def test_two_shards_on_two_replicas_the_survivor_posts_the_dead_ones_jobs_once(
    tmp_path: Path, pg_url: str
) -> None:
    figures = Figures("discord: 2 shards on 2 replicas, shard 0's SIGKILLed", tmp_path)
    async with FakeDiscord() as fake, WaveSpeedFake().started() as provider, Proxy() as proxy:
        two_guilds(fake)
        common = wavespeed_env(provider, proxy, pg_url, QUOTA)
        envs = [{**common, **shard_env(fake, 0)}, {**common, **shard_env(fake, 1)}]
        async with Replicas(tmp_path, proxy, envs) as replicas:
            await fake.wait_for(lambda: sorted(fake.identifies) == [(0, 2), (1, 2)])
            provider.hold()
            in_a = [f"a fox in server A, number {i}" for i in range(PER_GUILD)]
            in_b = [f"a fox in server B, number {i}" for i in range(PER_GUILD)]
            sent = await burst(fake, in_a, fake.channel_id) + await burst(fake, in_b, CHANNEL_B)
            before = await replicas_busy(JobRows(pg_url), 2 * PER_GUILD)
            assert len(provider.submits) == 2 * PER_GUILD
            # Each server's interactions reached its own shard's replica only.
            routed = collections.Counter((g, s) for e, g, s in fake.routed if e == "INTERACTION_CREATE")
            assert routed == {(fake.guild_id, 0): PER_GUILD, (GUILD_B, 1): PER_GUILD}
            # Shard 0's replica holds the leases of server A's jobs (it took them in), and of no others.
            victims = owned_by(before, replicas[0])
            assert victims == {r["id"] for r in before if r["workspace_id"] == fake.guild_id}

            killed_at = await replicas.kill(0)
            provider.release_callbacks()
            rows, taken = await settle(JobRows(pg_url), before, victims, killed_at)
            figures.add(jobs=len(rows), kills=1, victim_jobs=len(victims), **taken)

            assert all_in(rows, 2 * PER_GUILD, "delivered"), replicas.logs()
            assert sorted(prompt_of(r) for r in rows) == sorted(in_a + in_b)
            posted = {r["id"]: len(results_of(fake, r["id"])) for r in rows}
            duplicates = sum(n - 1 for n in posted.values() if n > 1)
            lost = sum(1 for n in posted.values() if n == 0)
            figures.add(duplicates=duplicates, lost=lost)
            assert duplicates == 0 and lost == 0, posted
            # Each job's images went to its own interaction's reply, in its own server's channel.
            for payload in sent:
                [reply] = [m for m in fake.messages.values() if m["id"] == fake.originals[payload["token"]]]
                assert with_files(reply) and reply["channel_id"] == payload["channel_id"]
            assert [status for _, status in provider.callbacks_sent] == [200] * (2 * PER_GUILD)
            assert submits_per_job(provider) == collections.Counter({r["callback_token"]: 1 for r in rows})

            # Server B's shard lives on: a Reroll there is answered and makes one more image.
            await reroll_in_server_b(fake, JobRows(pg_url), rows)
            ledger = await JobRows(pg_url).fetch("SELECT state, images FROM ledger")
            assert sorted((r["state"], r["images"]) for r in ledger) == [("committed", 1)] * (
                2 * PER_GUILD + 1
            )
            shown = await quota_show(pg_url, tmp_path, f"discord:{USER}", QUOTA)
            assert f"discord:{fake.guild_id}: {PER_GUILD} used of {QUOTA} today" in shown, shown
            assert f"discord:{GUILD_B}: {PER_GUILD + 1} used of {QUOTA} today" in shown, shown
            figures.write()


async def replicas_busy(rows: JobRows, count: int) -> list[dict[str, Any]]:
    """Every job stored and submitted (its submit answered), none finished: all in flight."""
    return await rows.wait(lambda now: all_in(now, count, "running"), 60, "all running")


async def reroll_in_server_b(fake: FakeDiscord, db: JobRows, rows: list[dict[str, Any]]) -> None:
    job_b = next(r for r in rows if r["workspace_id"] == GUILD_B)
    [result] = results_of(fake, job_b["id"])
    click = await fake.interact(fake.click_payload(result, f"hidream:reroll:{job_b['id']}"))
    rerolled = await db.wait(
        lambda now: any(r["parent_job_id"] == job_b["id"] and r["state"] == "delivered" for r in now),
        60,
        "rerolled",
    )
    [child] = [r for r in rerolled if r["parent_job_id"] == job_b["id"]]
    assert fake.acks[click["id"]][0] == 5 and child["workspace_id"] == GUILD_B
    assert len(results_of(fake, child["id"])) == 1

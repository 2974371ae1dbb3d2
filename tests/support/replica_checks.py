"""What the proofs on real processes check and record: the provider's submits per job, the operator's
quota line, when the dead replica's jobs were taken over, and the figures (printed under pytest -s and
written to the test's log)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.processes import process_env
from tests.support.replicas import JobRows, Proxy, Row

log = logging.getLogger("tests.support.replicas")
log.setLevel(logging.INFO)  # the figures reach pytest's log capture whatever the root logger's level

FINISHED = ("delivered", "failed")
# Jobs are taken over once their owner's lease lapses: short here, so the proof is quick.
LEASE_SECONDS = 3
# How long the survivors get to finish everything: the promise's 60 s for a takeover, and room to deliver.
SETTLE_WITHIN = 90.0


def wavespeed_env(provider: WaveSpeedFake, proxy: Proxy, url: str, quota: int) -> dict[str, str]:
    """A replica's settings besides its chat surface: the provider, the shared database, the proxy."""
    return {
        "HIDREAM_PROVIDER": "wavespeed",
        "WAVESPEED_API_KEY": provider.api_key,
        "WAVESPEED_BASE_URL": provider.url,
        "WAVESPEED_WEBHOOK_SECRET": provider.secret,
        "HIDREAM_DATABASE_URL": url,
        "HIDREAM_PUBLIC_URL": proxy.url,
        "HIDREAM_DAILY_IMAGE_QUOTA": str(quota),
        "HIDREAM_LEASE_SECONDS": str(LEASE_SECONDS),
    }


def submits_per_job(provider: WaveSpeedFake) -> collections.Counter[str]:
    """How many times the provider was asked for each job, by the job's callback token."""
    tokens = []
    for submit in provider.submits:
        hook = urllib.parse.parse_qs(submit.query).get("webhook", [""])[0]
        tokens.append(hook.rsplit("/", 1)[-1])
    return collections.Counter(tokens)


async def quota_show(url: str, tmp_path: Path, user: str, quota: int) -> str:
    """`hidream-bot quota show --user USER` as an operator runs it, against the replicas' database."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot.cli", "quota", "show", "--user", user),
        cwd=tmp_path,
        env=process_env(tmp_path, HIDREAM_DATABASE_URL=url, HIDREAM_DAILY_IMAGE_QUOTA=str(quota)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


class Figures:
    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.path = tmp_path / "figures.json"
        self.values: dict[str, Any] = {}

    def add(self, **values: Any) -> None:
        self.values.update(values)

    def write(self) -> None:
        line = f"{self.name}: " + ", ".join(f"{k}={v}" for k, v in self.values.items())
        print(line)
        log.info("%s", line)
        self.path.write_text(json.dumps({"name": self.name, **self.values}, indent=2))


async def takeovers(rows: JobRows, before: list[Row], victims: set[str], killed_at: float) -> dict[str, Any]:
    """Watch the dead replica's jobs until each is finished; when is each taken over? A job is taken
    over when its `owner` (the lease, where the jobs table has one) names another replica, or else when
    a survivor finishes it. Reads every 0.2 s; gives up with the others' deadline (the caller's wait)."""
    owner_before = {r["id"]: r.get("owner") for r in before if r["id"] in victims}
    taken: dict[str, float] = {}
    finished: dict[str, float] = {}
    while len(finished) < len(victims):
        now = time.monotonic()
        for row in await rows.jobs():
            job_id = row["id"]
            if job_id not in victims:
                continue
            moved = "owner" in row and row["owner"] not in (None, owner_before.get(job_id))
            if job_id not in taken and (moved or row["state"] in FINISHED):
                taken[job_id] = now
            if job_id not in finished and row["state"] in FINISHED:
                finished[job_id] = now
        await asyncio.sleep(0.2)
    return {
        "kill_to_last_takeover_s": round(max(taken.values(), default=killed_at) - killed_at, 1),
        "kill_to_last_victim_delivered_s": round(max(finished.values(), default=killed_at) - killed_at, 1),
        "takeover_seen_by": "owner" if any("owner" in r for r in before) else "delivery",
    }


async def settle(
    rows: JobRows, before: list[Row], victims: set[str], killed_at: float
) -> tuple[list[Row], dict[str, Any]]:
    """Wait until every job is finished (delivered or failed), watching the dead replica's jobs meanwhile;
    the rows, and the takeover figures."""
    watch = asyncio.create_task(takeovers(rows, before, victims, killed_at))
    try:
        settled = await rows.wait(
            lambda now: len(now) == len(before) and all(r["state"] in FINISHED for r in now),
            SETTLE_WITHIN,
            "finished (the dead replica's jobs never taken over?)",
        )
        return settled, await asyncio.wait_for(watch, 30)
    finally:
        watch.cancel()

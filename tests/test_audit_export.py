"""`hidream-bot audit export`, on both backends: 10,000 jobs exported by a real child process whose
peak memory, measured from outside by the kernel, stays within 20 MB of the same command exporting
nothing, although the prompts alone are 30 MB; the CSV and the JSON Lines parse back row for row;
`--tenant` keeps one tenant's jobs; a tenant that withholds prompts has them left out; the kit column
names the style kit and version each job used, an edited kit leaving earlier jobs on theirs."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.preferences import Preferences
from bot.model.jobs import JobState
from storage.audit import COLUMNS
from storage.postgres import PostgresStore
from storage.preferences import TenantPolicy
from storage.sqlite import SqliteStore
from storage.store import Store
from tests.support.audit import insert_jobs, numbered_job, run_measured
from tests.support.jobs import NOW
from tests.support.processes import Cli, process_env
from tests.support.store_backends import OpenStore

JOBS = 10_000
PROMPT_CHARS = 3_000  # 10,000 prompts of 3,000 characters: 30 MB that a non-streaming export would hold
HEADROOM_KB = 20 * 1024
DAY = datetime.fromtimestamp(NOW, UTC).date()
QUIET = "test:w2"  # every tenth job, and this tenant withholds its prompts


def database_env(store: Store) -> dict[str, str]:
    if isinstance(store, PostgresStore):
        return {"HIDREAM_DATABASE_URL": store.url}
    assert isinstance(store, SqliteStore)
    return {"HIDREAM_DB_PATH": store.path}


def export_args(*extra: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "audit", "export", *extra]


# Two child processes that each start the whole bot's command line, on a machine others share.
@pytest.mark.timeout(900)
def test_ten_thousand_jobs_stream_in_constant_memory_and_parse_back(
    open_store: OpenStore, tmp_path: Path
) -> None:
    jobs = [
        numbered_job(i, workspace="w2" if i % 10 == 0 else "w1", prompt_chars=PROMPT_CHARS)
        for i in range(JOBS)
    ]

    async def fill() -> dict[str, str]:
        # Closed before the export runs, as a bot writing meanwhile would have checkpointed its log.
        async with open_store(default_limit=100, clock=lambda: NOW) as store:
            await insert_jobs(store, jobs)
            await Preferences(store).rows.set_policy(QUIET, TenantPolicy(withhold_prompts=True))
            return database_env(store)

    env = process_env(tmp_path, **asyncio.run(fill()))
    idle = run_measured(
        export_args("--since", (DAY + timedelta(days=400)).isoformat(), "--format", "csv"),
        env,
        tmp_path / "idle.csv",
        tmp_path,
    )
    assert idle.returncode == 0, idle.stderr
    assert (tmp_path / "idle.csv").read_text().splitlines() == [",".join(COLUMNS)]

    full = run_measured(
        export_args("--since", DAY.isoformat(), "--until", DAY.isoformat(), "--format", "csv"),
        env,
        tmp_path / "all.csv",
        tmp_path,
    )
    assert full.returncode == 0, full.stderr
    assert (tmp_path / "all.csv").stat().st_size > JOBS * PROMPT_CHARS * 0.9
    grew_kb = full.max_rss_kb - idle.max_rss_kb
    print(f"audit export of {JOBS} jobs: peak {full.max_rss_kb} kB, idle {idle.max_rss_kb} kB")
    assert grew_kb < HEADROOM_KB, f"the export grew by {grew_kb} kB over its idle {idle.max_rss_kb} kB"

    with (tmp_path / "all.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        exported = list(reader)
    assert [r["job"] for r in exported] == [j.id for j in jobs]
    for job, row in zip(jobs, exported, strict=True):
        quiet = job.tenant == QUIET
        assert row["tenant"] == job.tenant and row["person"] == job.user_key
        assert row["prompt"] == ("" if quiet else job.request.prompt)
        assert row["prompt_withheld"] == ("yes" if quiet else "no")
        assert (row["channel"], row["project"], row["provider"], row["model"]) == (
            job.channel,
            job.project,
            "sandbox",
            "full",
        )
        assert row["seed"] == str(job.seed) and row["state"] == job.state.value
        assert row["cost_usd"] == ("0.01" if job.state is JobState.DELIVERED else "0.0")
        assert row["parent"] == (job.parent_job_id or "")
        assert (row["kit"], row["approved_by"]) == ("", "")
        assert row["time"].startswith(DAY.isoformat())
        assert f"--seed {job.seed}" in row["flags"]
        assert ("--project launch" in row["flags"]) == bool(job.project)


def test_jsonl_a_tenant_filter_and_withheld_prompts(open_store: OpenStore, cli: Cli) -> None:
    jobs = [numbered_job(i, workspace="w2" if i % 10 == 0 else "w1", prompt_chars=80) for i in range(60)]
    later = numbered_job(60, workspace="w1", prompt_chars=80, created_at=NOW + 86400 * 2)

    async def fill() -> dict[str, str]:
        async with open_store(default_limit=100, clock=lambda: NOW) as store:
            await insert_jobs(store, [*jobs, later])
            await Preferences(store).rows.set_policy(QUIET, TenantPolicy(withhold_prompts=True))
            return database_env(store)

    env = asyncio.run(fill())

    def export(*args: str) -> list[dict[str, Any]]:
        done = cli("audit", "export", "--since", DAY.isoformat(), *args, "--format", "jsonl", **env)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    rows = export("--tenant", QUIET)
    assert [r["job"] for r in rows] == [j.id for j in jobs if j.tenant == QUIET]
    assert all(tuple(r) == COLUMNS for r in rows)
    assert all(r["prompt"] == "" and r["prompt_withheld"] is True and r["tenant"] == QUIET for r in rows)
    assert all(isinstance(r["seed"], int) and isinstance(r["cost_usd"], float) for r in rows)

    rows = export("--tenant", "test:w1")
    # No --until: every day from --since on, the later job too.
    assert [r["job"] for r in rows] == [j.id for j in [*jobs, later] if j.tenant == "test:w1"]
    assert all(r["prompt"].startswith(f"job {int(r['job'], 16)}:") and not r["prompt_withheld"] for r in rows)
    # --until ends with its day.
    assert len(export("--until", DAY.isoformat())) == len(jobs)

    # A range that is backwards, or a date that is none, is refused plainly.
    backwards = cli(
        "audit", "export", "--since", DAY.isoformat(), "--until", "2000-01-01", "--format", "csv", **env
    )
    assert backwards.returncode == 2 and "is before --since" in backwards.stderr
    with pytest.raises(SystemExit) as refused:
        cli("audit", "export", "--since", "yesterday", "--format", "csv", **env)
    assert refused.value.code == 2


def test_the_kit_column_names_the_kit_and_version_each_job_used(open_store: OpenStore, cli: Cli) -> None:
    async def database() -> dict[str, str]:
        async with open_store(default_limit=100) as store:
            return database_env(store)

    env = asyncio.run(database())
    lines = (
        "/kit save house --prefix v1 style",
        "/hidream a tree --kit house",
        "/kit save house --prefix v2 style --ar 3:2",
        "/hidream a tree --kit house",
        "/hidream a tree",
    )
    made = cli("run", stdin="\n".join(lines) + "\n", **env)
    assert made.returncode == 0, made.stderr
    today = datetime.now(UTC).date().isoformat()
    done = cli("audit", "export", "--since", today, "--format", "jsonl", **env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # Editing the kit made a new version: the first job still reports the one it used.
    assert [(r["prompt"], r["kit"]) for r in rows] == [
        ("v1 style a tree", "house v1"),
        ("v2 style a tree", "house v2"),
        ("a tree", ""),
    ]
    assert "--ar 3:2" in rows[1]["flags"] and "--ar" not in rows[0]["flags"]

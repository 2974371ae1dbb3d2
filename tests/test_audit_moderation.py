"""The audit export records what operators did from the moderation view (issue 22: each operator
action "recorded in the audit export"): after the jobs of the range, one row of kind `moderation` per
action of those days, in the tenant asked for; the jobs' rows say kind `job`. On both backends."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from storage import audit, reports
from tests.support.jobs import NOW, make_job
from tests.support.store_backends import OpenStore


async def test_moderation_actions_follow_the_jobs_in_the_export(open_store: OpenStore) -> None:
    moment = [NOW]
    async with open_store(default_limit=10, clock=lambda: moment[0]) as store:
        fox, heron = make_job(), make_job(user="u2")
        for job in (fox, heron):
            await store.admit(job, workspace_key="test:w1", dedup_key=None)
        moment[0] = NOW + 60
        await reports.record_moderation(
            store,
            "delete",
            job_id=fox.id,
            tenant="test:w1",
            user_key="test:u1",
            detail="1 message(s), 1 image(s)",
        )
        moment[0] = NOW + 120
        await reports.record_moderation(
            store,
            "block everywhere",
            job_id=heron.id,
            tenant="*",
            user_key="test:u2",
            detail="seen in test:w1",
        )
        moment[0] = NOW + 86400 * 3  # another day: outside the range below
        await reports.record_moderation(store, "block", job_id=fox.id, tenant="test:w1", user_key="test:u1")

        day = datetime.fromtimestamp(NOW, UTC).date()
        since, until = audit.day_range(day, day)
        rows = [r async for r in audit.rows(store, since=since, until=until)]
        made = sorted([fox.id, heron.id])  # asked at the same time: by id
        assert [(r["kind"], r["job"]) for r in rows] == [
            ("job", made[0]),
            ("job", made[1]),
            ("moderation", fox.id),
            ("moderation", heron.id),
        ]
        deleted, blocked = rows[2:]
        assert all(tuple(r) == audit.COLUMNS for r in rows)
        assert (deleted["tenant"], deleted["person"], deleted["action"]) == (
            "test:w1",
            "test:u1",
            "delete: 1 message(s), 1 image(s)",
        )
        assert (blocked["tenant"], blocked["action"]) == ("*", "block everywhere: seen in test:w1")
        assert deleted["prompt"] == "" and deleted["cost_usd"] == 0.0 and rows[0]["action"] == ""

        # One tenant's export: its own actions only (a block everywhere holds in "*").
        mine = [r async for r in audit.rows(store, since=since, until=until, tenant="test:w1")]
        assert [r["kind"] for r in mine] == ["job", "job", "moderation"]

        text = "".join([chunk async for chunk in audit.export(store, "csv", since=since, until=until)])
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert [r["kind"] for r in parsed] == ["job", "job", "moderation", "moderation"]
        assert parsed[2]["prompt_withheld"] == "no" and parsed[2]["seed"] == ""

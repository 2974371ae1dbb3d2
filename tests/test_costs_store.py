"""Cost by channel and project in the store, on both backends: a job keeps its channel and project, a
project's budget refuses at admission (nothing stored, nothing reserved) and gives back a failed
job's reservation as the tenant's does, a failover's new price stays within it, a channel's default
project is per tenant, and the costs read back grouped by tenant, channel, project, person and
provider over a range of days."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.model.errors import QuotaExceeded
from bot.model.jobs import JobState
from storage.costs import ChannelProjects, costs
from storage.quota import Charge, utc_day
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore

TENANT = "test:w1"
DAY = 86400.0


def priced(user: str = "u1", *, cost: float, project: str = "", channel: str = "c1", days_ago: int = 0):
    made = make_job(user=user)
    return replace(
        made,
        cost_usd=cost,
        project=project,
        channel=channel,
        created_at=NOW - days_ago * DAY,
        request=made.request.with_changes(project=project or None),
    )


async def test_a_projects_budget_refuses_at_admission_and_a_failure_gives_it_back(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=100, clock=lambda: NOW) as store:
        await store.set_project_budget(TENANT, "launch", 0.10)
        first = priced(cost=0.06, project="launch")
        await store.admit(first, workspace_key=TENANT, dedup_key=None)
        stored = await store.job(first.id)
        assert stored is not None and (stored.channel, stored.project) == ("c1", "launch")
        assert (await store.project_month(TENANT, "launch")).spent_usd == pytest.approx(0.06)

        second = priced(cost=0.06, project="launch")
        with pytest.raises(QuotaExceeded, match=r"`launch` has used \$0.06 of its \$0.10") as refused:
            await store.admit(second, workspace_key=TENANT, dedup_key=None)
        assert refused.value.limit == "project" and "nothing was spent" in refused.value.user_message
        assert await store.job(second.id) is None  # nothing stored, nothing reserved
        assert (await store.quota("test:u1", TENANT)).month_spent_usd == pytest.approx(0.06)
        # The cheap look before any bytes are fetched refuses the same.
        with pytest.raises(QuotaExceeded):
            await store.check(Charge("test:u1", TENANT, 1, 0.06, "launch"))

        # Another project, no project, and the same project in another tenant are not bound by it.
        for other, where in (
            (priced(cost=0.06, project="other"), TENANT),
            (priced(cost=0.06), TENANT),
            (priced(cost=0.06, project="launch"), "test:w2"),
        ):
            await store.admit(other, workspace_key=where, dedup_key=None)

        # A failure gives the reservation back: the project can spend it again.
        assert await store.transition(first.id, JobState.FAILED, error="provider said no")
        assert (await store.project_month(TENANT, "launch")).spent_usd == 0.0
        await store.admit(second, workspace_key=TENANT, dedup_key=None)
        [month] = await store.project_budgets(TENANT)
        assert (month.project, month.budget_usd, round(month.spent_usd, 6)) == ("launch", 0.10, 0.06)

        await store.set_project_budget(TENANT, "launch", None)
        assert await store.project_budgets(TENANT) == []
        await store.admit(priced(cost=5.0, project="launch"), workspace_key=TENANT, dedup_key=None)


async def test_a_failover_does_not_take_a_project_past_its_budget(open_store: OpenStore) -> None:
    async with open_store(default_limit=100, clock=lambda: NOW) as store:
        await store.set_project_budget(TENANT, "launch", 0.05)
        job = replace(priced(cost=0.03, project="launch"), provider="pixazo")
        await store.admit(job, workspace_key=TENANT, dedup_key=None)
        assert await store.transition(job.id, JobState.SUBMITTING)
        assert not await store.move_job(job.id, from_provider="pixazo", to_provider="fal", cost_usd=0.06)
        assert await store.move_job(job.id, from_provider="pixazo", to_provider="fal", cost_usd=0.05)
        assert (await store.project_month(TENANT, "launch")).spent_usd == pytest.approx(0.05)


async def test_a_channels_default_project_is_its_tenants_own(open_store: OpenStore) -> None:
    async with open_store(default_limit=100, clock=lambda: NOW) as store:
        channels = ChannelProjects(store)
        await channels.set(TENANT, "c1", "launch")
        assert await channels.get(TENANT, "c1") == "launch"
        assert await channels.get("test:w2", "c1") is None and await channels.get(TENANT, "c2") is None
        await channels.set(TENANT, "c1", "spring")
        assert await channels.get(TENANT, "c1") == "spring"
        await channels.set(TENANT, "c1", None)
        assert await channels.get(TENANT, "c1") is None


async def test_costs_by_each_grouping_over_a_range_of_days(open_store: OpenStore) -> None:
    async with open_store(default_limit=100, clock=lambda: NOW) as store:
        made = [
            (priced("u1", cost=0.10, project="launch", channel="c1"), TENANT, "fal"),
            (priced("u2", cost=0.20, project="launch", channel="c2"), TENANT, "fal"),
            (priced("u1", cost=0.05, channel="c1"), TENANT, "wavespeed"),
            (priced("u3", cost=0.40, project="launch", channel="c1"), "test:w2", "fal"),
            (priced("u1", cost=1.00, project="launch", channel="c1", days_ago=3), TENANT, "fal"),
        ]
        for job, tenant, provider in made:
            await store.admit(replace(job, provider=provider), workspace_key=tenant, dedup_key=None)
            await walk(store, job.id, JobState.DELIVERED)
        # A failed job and one still running cost nothing yet: only delivered images count.
        failed, waiting = priced(cost=9.0, project="launch"), priced(cost=9.0, project="launch")
        for job in (failed, waiting):
            await store.admit(job, workspace_key=TENANT, dedup_key=None)
        assert await store.transition(failed.id, JobState.FAILED, error="no")

        today = utc_day(NOW)

        async def by(
            grouping: str, since: str = today, tenant: str | None = None
        ) -> list[tuple[object, ...]]:
            found = await costs(store, grouping, since=since, until=today, tenant=tenant)  # type: ignore[arg-type]
            return [(r.tenant, r.key, r.images, round(r.usd, 4), r.jobs) for r in found]

        assert await by("tenant") == [("test:w2", "test:w2", 1, 0.4, 1), (TENANT, TENANT, 3, 0.35, 3)]
        assert await by("project") == [
            ("test:w2", "launch", 1, 0.4, 1),
            (TENANT, "launch", 2, 0.3, 2),
            (TENANT, "", 1, 0.05, 1),
        ]
        assert await by("channel", tenant=TENANT) == [(TENANT, "c2", 1, 0.2, 1), (TENANT, "c1", 2, 0.15, 2)]
        assert await by("person", tenant=TENANT) == [
            (TENANT, "test:u2", 1, 0.2, 1),
            (TENANT, "test:u1", 2, 0.15, 2),
        ]
        assert await by("provider") == [("", "fal", 3, 0.7, 3), ("", "wavespeed", 1, 0.05, 1)]
        # Three days back, the older job counts too.
        earlier = utc_day(NOW - 3 * DAY)
        assert await by("project", since=earlier, tenant=TENANT) == [
            (TENANT, "launch", 3, 1.3, 3),
            (TENANT, "", 1, 0.05, 1),
        ]
        with pytest.raises(ValueError):
            await by("colour")

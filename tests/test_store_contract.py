"""The rest of the store contract, on both backends: tenants' limits, ceilings and budgets through the
store's own methods, secrets, media, posts, callbacks and the job look-ups the core makes."""

from __future__ import annotations

import asyncio

import pytest

from bot.model.errors import BadInput, QuotaExceeded
from bot.model.jobs import Job, JobState
from storage.posts import NewMedia
from storage.quota import Charge
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore


async def test_operator_limits_win_and_the_ceiling_holds_against_admins(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, default_ceiling=None, clock=lambda: NOW) as store:
        await store.set_limit("test:w1", "members", "", 10, by="admin")
        await store.set_limit("test:w1", "members", "", 8, by="operator")
        status = await store.quota("test:u1", "test:w1")
        assert (status.limit, status.source) == (8, "this server's or workspace's limit, set by an operator")
        await store.set_limit("*", "user", "test:u1", 0, by="operator")
        status = await store.quota("test:u1", "test:w1")
        assert (status.limit, status.source) == (0, "your own limit, set by an operator for every server")
        await store.set_limit("test:w1", "user", "test:u1", 6, by="operator")
        assert (await store.quota("test:u1", "test:w1")).limit == 6
        with pytest.raises(PermissionError):
            await store.set_limit("test:w1", "ceiling", "", 100, by="admin")
        await store.set_limit("test:w1", "ceiling", "", 3, by="operator")
        job = await store.admit(make_job(n=3), workspace_key="test:w1", dedup_key=None)
        await walk(store, job.id, JobState.DELIVERED)
        await store.grant("test:w1", "test:u2", 50)
        await store.reset("test:w1", "test:u1")
        with pytest.raises(QuotaExceeded, match="has made 3 of the 3 images it may make today"):
            await store.check(Charge("test:u2", "test:w1", 1, 0.0))
        status = await store.quota("test:u1", "test:w1")
        assert (status.used, status.ceiling, status.tenant_used, status.remaining) == (0, 3, 3, 0)
        assert sorted(await store.limits("test:w1")) == [
            ("ceiling", "", 3, "operator"),
            ("members", "", 8, "operator"),
            ("members", "", 10, "admin"),
            ("user", "test:u1", 6, "operator"),
        ]


async def test_the_default_ceiling_and_a_monthly_budget(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, default_ceiling=4, clock=lambda: NOW) as store:
        await store.set_budget("test:w1", 0.12)
        first = make_job(n=2)
        first.cost_usd = 0.08
        await store.admit(first, workspace_key="test:w1", dedup_key=None)
        second = make_job(n=1, user="u2")
        second.cost_usd = 0.08
        with pytest.raises(QuotaExceeded, match=r"\$0.08 of its \$0.12 monthly budget"):
            await store.admit(second, workspace_key="test:w1", dedup_key=None)
        status = await store.quota("test:u1", "test:w1")
        assert (status.budget_usd, status.month_spent_usd, status.ceiling) == (0.12, 0.08, 4)
        await store.set_budget("test:w1", None)
        with pytest.raises(QuotaExceeded, match="has made 2 of the 4"):
            await store.admit(make_job(n=3, user="u2"), workspace_key="test:w1", dedup_key=None)
        await store.admit(make_job(n=2, user="u2"), workspace_key="test:w1", dedup_key=None)
        assert await store.spend("test:w1", scope="workspace") == (0, 0.0)  # nothing delivered yet
        await store.admit(make_job(n=1), workspace_key="test:w2", dedup_key=None)
        assert set(await store.tenants_of("test:u1")) == {"test:w1", "test:w2"}


async def test_secrets_media_and_posts(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        key = await store.secret("media-links")
        assert len(key) == 32 and await store.secret("media-links") == key
        assert await store.secret("other") != key
        media_id = await store.put_media(b"\x00\x01png", "image/png", 64, 32, nsfw=True)
        stored = await store.media(media_id)
        assert stored is not None
        assert (stored.data, stored.content_type, stored.width, stored.height, stored.nsfw) == (
            b"\x00\x01png",
            "image/png",
            64,
            32,
            True,
        )
        assert await store.media("missing") is None
        job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        await store.remember_post(job.id, "test", "m2", None)
        await store.remember_post(job.id, "test", "m1", "t9")
        await store.remember_post(job.id, "test", "m2", "t9")  # a later call adds the thread
        await store.remember_post(job.id, "test", "m2", None)  # and a thread once known stays
        await store.record_posts(job.id, "test", [("m1", None), ("m3", "t9")])
        assert await store.posts_of(job.id, "test") == ["m2", "m1", "m3"]
        await walk(store, job.id, JobState.DELIVERED)
        assert (await store.latest_job_in_thread("test", "t9")).id == job.id  # type: ignore[union-attr]
        await store.forget_posts(job.id)
        assert await store.posts_of(job.id, "test") == []
        assert await store.job_for_post("test", "m1") is None


async def test_job_by_prefix_is_the_tenants_newest_match(open_store: OpenStore) -> None:
    """Another tenant's newer job with the same id start neither wins nor hides the asker's own."""
    async with open_store(default_limit=25) as store:

        async def admit(job_id: str, workspace: str, user: str, at: float) -> Job:
            job = make_job(user=user, job_id=job_id)
            job.workspace_id, job.created_at = workspace, at
            return await store.admit(job, workspace_key=f"test:{workspace or 'dm:' + user}", dedup_key=None)

        own = await admit("cd" + "0" * 30, "w1", "u1", NOW)
        await admit("cd" + "1" * 30, "w2", "u1", NOW + 5)  # the same person, in another server
        mine_dm = await admit("cd" + "2" * 30, "", "u1", NOW + 1)
        await admit("cd" + "3" * 30, "", "u2", NOW + 9)  # another person's DM
        colleague = await admit("ce" + "0" * 30, "w1", "u2", NOW + 2)  # a server is one tenant
        by = store.job_by_prefix
        assert (await by("cd", surface="test", workspace_id="w1", user_id="u1")).id == own.id  # type: ignore[union-attr]
        assert (await by("cd", surface="test", workspace_id="", user_id="u1")).id == mine_dm.id  # type: ignore[union-attr]
        assert (await by("ce", surface="test", workspace_id="w1", user_id="u1")).id == colleague.id  # type: ignore[union-attr]
        assert await by("ce", surface="test", workspace_id="", user_id="u1") is None
        assert await by("cd", surface="test", workspace_id="w3", user_id="u1") is None


async def test_job_lookups_callbacks_and_queue(open_store: OpenStore) -> None:
    clock = [NOW]
    async with open_store(default_limit=25, clock=lambda: clock[0]) as store:
        a = await store.admit(make_job(job_id="ab" + "0" * 30), workspace_key="test:w1", dedup_key="d1")
        later = make_job(job_id="ab" + "1" * 30)
        later.created_at = NOW + 5
        b = await store.admit(later, workspace_key="test:w1", dedup_key=None)
        w1 = {"workspace_id": "w1", "user_id": "u1"}
        assert (await store.job_by_prefix("ab", surface="test", **w1)).id == b.id  # type: ignore[union-attr]
        assert await store.job_by_prefix("ab%", surface="test", **w1) is None
        assert await store.job_by_prefix("ab", surface="other", **w1) is None
        assert (await store.job_by_token(a.callback_token)).id == a.id  # type: ignore[union-attr]
        assert (await store.job_by_dedup("d1")).id == a.id  # type: ignore[union-attr]
        assert await store.job("nope") is None
        assert [await store.queue_position(a), await store.queue_position(b)] == [1, 2]
        assert await store.callback_status(a.id) is None
        assert await store.record_callback(a.id, {"status": "ok", "n": [1, 2]})
        assert await store.callback_status(a.id) == {"status": "ok", "n": [1, 2]}
        clock[0] += 1
        assert await store.transition(a.id, JobState.SUBMITTING, provider_job_id="p1")
        assert await store.annotate(a.id, JobState.SUBMITTING, result_media=["x", "y"])
        stored = await store.job(a.id)
        assert stored is not None
        assert (stored.state, stored.provider_job_id, stored.result_media) == (
            JobState.SUBMITTING,
            "p1",
            ["x", "y"],
        )
        assert stored.request == a.request and stored.origin == a.origin and stored.created_at == NOW
        assert await store.transition(a.id, JobState.FAILED, error="gone")
        assert not await store.record_callback(a.id, {"status": "late"})
        assert [j.id for j in await store.unfinished_jobs()] == [b.id]


async def test_complete_keeps_the_results_and_moves_the_job_in_one_step(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        images = [
            NewMedia(b"\x89PNG one", "image/png", 64, 32),
            NewMedia(b"jpeg two", "image/jpeg", 8, 8, True),
        ]
        # Not yet running: the move is refused, and nothing is kept.
        assert await store.complete(job.id, images) is None
        assert (await store.job(job.id)).state is JobState.QUEUED  # type: ignore[union-attr]
        await walk(store, job.id, JobState.RUNNING)
        ids = await store.complete(job.id, images)
        assert ids is not None and len(set(ids)) == 2
        done = await store.job(job.id)
        assert done is not None and (done.state, done.result_media) == (JobState.COMPLETED, ids)
        kept = [await store.media(media_id) for media_id in ids]
        assert [(m.data, m.content_type, m.width, m.height, m.nsfw) for m in kept if m is not None] == [
            (b"\x89PNG one", "image/png", 64, 32, False),
            (b"jpeg two", "image/jpeg", 8, 8, True),
        ]
        # A second completion (a repeat) is refused and names nothing new.
        assert await store.complete(job.id, images[:1]) is None
        assert (await store.job(job.id)).result_media == ids  # type: ignore[union-attr]


async def test_delivered_records_the_posts_and_moves_the_job_in_one_step(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        await walk(store, job.id, JobState.DELIVERING)
        assert await store.delivered(job.id, "test", [("m1", None), ("m2", "t9")])
        assert (await store.job(job.id)).state is JobState.DELIVERED  # type: ignore[union-attr]
        assert await store.posts_of(job.id, "test") == ["m1", "m2"]
        assert (await store.latest_job_in_thread("test", "t9")).id == job.id  # type: ignore[union-attr]
        assert await store.spend("test:u1", scope="user") == (1, job.cost_usd)  # the ledger settled
        # Once delivered, a repeat moves nothing but still keeps a post the platform holds.
        assert not await store.delivered(job.id, "test", [("m3", "t9")])
        assert await store.posts_of(job.id, "test") == ["m1", "m2", "m3"]
        # A job failed meanwhile is not delivered, yet its posts are found (their buttons work).
        other = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        assert await store.transition(other.id, JobState.FAILED, error="gone")
        assert not await store.delivered(other.id, "test", [("m4", None)])
        assert (await store.job_for_post("test", "m4")).state is JobState.FAILED  # type: ignore[union-attr]


async def test_one_persons_cap_holds_across_tenants_under_concurrent_submits(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, person_quota=7, clock=lambda: NOW) as store:

        async def submit(i: int) -> str:
            try:
                await store.admit(make_job(), workspace_key=f"test:w{i % 4}", dedup_key=None)
            except QuotaExceeded as refused:
                return refused.limit
            return "admitted"

        outcomes = await asyncio.gather(*(submit(i) for i in range(20)))
        assert sorted(outcomes) == ["admitted"] * 7 + ["person"] * 13
        with pytest.raises(QuotaExceeded) as refused:
            await store.check(Charge("test:u1", "test:w9", 1, 0.0))
        message = refused.value.user_message
        assert "made 7 of the 7 images one person may make in a day across every server" in message
        assert "resets at 00:00 UTC" in message
        # Resets in one tenant give none of it back; another person is not touched.
        first = await store.admit(make_job(user="u2"), workspace_key="test:w0", dedup_key=None)
        await walk(store, first.id, JobState.DELIVERED)
        await store.reset("test:w0", "test:u1")
        status = await store.quota("test:u1", "test:w0")
        assert (status.person_used, status.person_quota, status.remaining) == (7, 7, 0)
        assert (await store.quota("test:u2", "test:w1")).remaining == 6


async def test_admins_limits_grants_and_resets_stop_at_the_admin_maximum(open_store: OpenStore) -> None:
    async with open_store(default_limit=3, clock=lambda: NOW) as store:
        # A limit an admin set above the maximum (the daily quota by default) counts as the maximum.
        await store.set_limit("test:w1", "user", "test:u1", 100, by="admin")
        status = await store.quota("test:u1", "test:w1")
        assert (status.limit, status.admin_max) == (3, 3)
        with pytest.raises(PermissionError):
            await store.set_limit("test:w1", "admin_max", "", 100, by="admin")
        job = await store.admit(make_job(n=3), workspace_key="test:w1", dedup_key=None)
        await walk(store, job.id, JobState.DELIVERED)
        await store.reset("test:w1", "test:u1")
        assert (await store.quota("test:u1", "test:w1")).remaining == 0
        with pytest.raises(
            QuotaExceeded, match="made 3 images here today, resets included, and admins may allow"
        ):
            await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        # An operator's grant lifts it; so does an operator's maximum for the tenant.
        await store.grant("test:w1", "test:u1", 1)
        await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        await store.set_limit("test:w1", "admin_max", "", 50, by="operator")
        status = await store.quota("test:u1", "test:w1")
        assert (status.limit, status.admin_max, status.remaining) == (51, 50, 47)
        assert (await store.quota("test:u1", "test:w2")).admin_max == 3  # that tenant only


async def test_admins_grants_at_once_never_pass_the_admin_maximum_together(open_store: OpenStore) -> None:
    async with open_store(default_limit=3, admin_max=8, clock=lambda: NOW) as store:

        async def grant() -> bool:
            try:
                await store.grant("test:w1", "test:u1", 1, by="admin")
            except BadInput as refused:
                assert "admins here may give a member at most 8 a day" in refused.user_message
                return False
            return True

        assert sorted(await asyncio.gather(*(grant() for _ in range(12)))) == [False] * 7 + [True] * 5
        assert (await store.quota("test:u1", "test:w1")).limit == 8
        await store.grant("test:w1", "test:u1", 10)  # an operator's grant is not bounded
        assert (await store.quota("test:u1", "test:w1")).limit == 18

"""Approvals in the store, on both backends, and the words of `policy review`: a channel is marked
reviewed and unmarked per tenant; an approval opens once, is decided once (a second decision, even a
different one, changes nothing), and stays listed as pending until then; only admins mark channels,
and reviewers are read from mentions as Discord and Slack write them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from adapters.console import ConsoleChat
from adapters.discord import review as on_discord
from adapters.slack import review as on_slack
from bot.model.errors import BadInput
from bot.usecases.actor import Actor
from bot.usecases.approvals import is_reviewer, parse_review, set_review
from storage.approvals import Approvals, Review
from tests.support.harness import BotHarness, sandbox_of
from tests.support.jobs import NOW, make_job
from tests.support.store_backends import OpenStore

TENANT = "test:w1"


class Reading:
    """A surface's terms that read its mentions (the adapters' own readers) and check nothing."""

    def __init__(self, surface: Any) -> None:
        self.surface = surface

    async def reviewers(self, text: str) -> str | None:
        found: str | None = self.surface.read_reviewers(text)
        return found

    async def queue(self, text: str) -> str | None:
        found: str | None = self.surface.read_channel(text)
        return found

    def mention(self, spec: str) -> str:
        return f"<{spec}>"


async def test_a_channel_is_reviewed_in_its_tenant_until_unmarked(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        book = Approvals(store)
        await book.set_reviewed(TENANT, "c1", Review("role:42", "q1"))
        assert await book.reviewed(TENANT, "c1") == Review("role:42", "q1")
        assert await book.reviewed("test:w2", "c1") is None  # another tenant's channel of that id
        await book.set_reviewed(TENANT, "c1", Review("users:a,b", "dm"))
        assert await book.reviewed(TENANT, "c1") == Review("users:a,b", "dm")
        await book.set_reviewed(TENANT, "c1", None)
        assert await book.reviewed(TENANT, "c1") is None


async def test_an_approval_opens_once_and_is_decided_once(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        book = Approvals(store)
        job = make_job()
        await store.admit(job, workspace_key=TENANT, dedup_key=None)
        opened = await book.open(job.id, TENANT, "c1", Review("group:S1", "q1"))
        assert (opened.state, opened.queued, opened.reviewers) == ("pending", False, "group:S1")
        await book.queued(job.id)
        again = await book.open(job.id, TENANT, "c1", Review("group:S2", "q2"))  # a redelivery
        assert again.queued and again.reviewers == "group:S1"
        (pending,) = await book.pending()
        assert (pending.job_id, pending.tenant, pending.requester, pending.prompt) == (
            job.id,
            TENANT,
            "test:u1",
            "a fox",
        )

        assert await book.get(job.id, "test:w2") is None  # not another tenant's to decide
        assert not await book.decide(job.id, "test:w2", "approved", "x")
        assert await book.decide(job.id, TENANT, "approved", "r1")
        assert not await book.decide(job.id, TENANT, "rejected", "r2", "late")
        decided = await book.get(job.id, TENANT)
        assert decided is not None and (decided.state, decided.decided_by, decided.reason) == (
            "approved",
            "r1",
            "",
        )
        await book.posted(job.id, "c1:m1")
        assert (await book.get(job.id, TENANT)).posted == "c1:m1"  # type: ignore[union-attr]
        assert await book.pending() == []


async def test_an_approved_post_cut_off_is_taken_again_only_once_stale(open_store: OpenStore) -> None:
    moment = [NOW]
    async with open_store(default_limit=10, clock=lambda: moment[0]) as store:
        book = Approvals(store)
        job = make_job()
        await store.admit(job, workspace_key=TENANT, dedup_key=None)
        await book.open(job.id, TENANT, "c1", Review("role:1", "q1"))
        assert not await book.take_posting(job.id, TENANT, 120)  # pending: nothing to post yet
        assert await book.decide(job.id, TENANT, "approved", "r1")  # taken for posting by the decision
        moment[0] = NOW + 10
        assert not await book.take_posting(job.id, TENANT, 120)  # a double press meanwhile
        moment[0] = NOW + 200
        assert not await book.take_posting(job.id, "test:w2", 120)
        assert await book.take_posting(job.id, TENANT, 120)  # its poster stopped: taken again, once
        assert not await book.take_posting(job.id, TENANT, 120)
        await book.posted(job.id, "c1:m1")
        moment[0] = NOW + 1000
        assert not await book.take_posting(job.id, TENANT, 120)  # out: never again


async def test_a_take_down_withdraws_a_pending_approval_and_keeps_a_decided_one(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        book = Approvals(store)
        waiting, approved = make_job(), make_job()
        for job in (waiting, approved):
            await store.admit(job, workspace_key=TENANT, dedup_key=None)
            await book.open(job.id, TENANT, "c1", Review("group:S1", "q1"))
        assert await book.decide(approved.id, TENANT, "approved", "r1")
        for job in (waiting, approved):
            await book.withdraw(job.id)
        gone, kept = await book.get(waiting.id, TENANT), await book.get(approved.id, TENANT)
        assert gone is not None and kept is not None
        assert (gone.state, kept.state, kept.decided_by) == (
            "withdrawn",
            "approved",
            "r1",
        )  # the audit keeps who
        assert await book.pending() == []
        assert not await book.decide(waiting.id, TENANT, "approved", "r2")  # nothing left to decide


@pytest.mark.parametrize(
    ("surface", "typed", "review"),
    [
        (on_discord, "<@&123> to <#456>", Review("role:123", "456")),
        (on_slack, "<!subteam^S0AB|@design> to <#C9|review-queue>", Review("group:S0AB", "C9")),
        (on_slack, "<@U1> <@U2|bob>", Review("users:U1,U2", "dm")),
        (on_discord, "<@!77> <@78> to <#9>", Review("users:77,78", "9")),
        (on_discord, "off", None),
    ],
)
async def test_reviewers_and_the_queue_are_read_from_mentions(
    surface: Any, typed: str, review: Review | None
) -> None:
    assert await parse_review(typed, Reading(surface)) == review


@pytest.mark.parametrize(
    ("surface", "typed", "said"),
    [
        (on_discord, "<@&123>", "add `to #queue`"),
        (on_slack, "design team", "Name who reviews"),
        (on_slack, "<@U1> to elsewhere", "Name who reviews"),
        (on_discord, "<!subteam^S0AB> to <#9>", "Name who reviews"),  # another surface's mention
    ],
)
async def test_a_review_that_names_no_one_or_no_queue_is_refused_in_our_words(
    surface: Any, typed: str, said: str
) -> None:
    with pytest.raises(BadInput, match=said):
        await parse_review(typed, Reading(surface))


async def test_only_admins_mark_a_channel_and_only_in_one(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        book = Approvals(store)
        member = Actor(surface="test", workspace_id="w1", user_id="u1", channel_id="c1")
        with pytest.raises(BadInput, match="Only the admins"):
            await set_review(book, member, "<@&1> to <#2>", Reading(on_discord))
        console = Actor(surface="console", workspace_id="", user_id="local", admin=True)
        with pytest.raises(BadInput, match="in the channel whose requests"):
            await set_review(book, console, "<@&1> to <#2>", None)
        admin = Actor(surface="test", workspace_id="w1", user_id="a", admin=True, channel_id="c1")
        terms = Reading(on_discord)
        assert (
            "now reviewed by <role:1>, in <#2>"
            in (await set_review(book, admin, "<@&1> to <#2>", terms)).text
        )
        assert "now reviewed by <role:1>" in (await set_review(book, admin, "", terms)).text
        assert "no longer reviewed" in (await set_review(book, admin, "off", terms)).text
        assert await book.reviewed(TENANT, "c1") is None


async def test_a_reviewer_is_a_listed_person_or_a_member_of_the_role_or_group() -> None:
    async def members(group: str) -> bool:
        return group == "S1"

    bob = Actor(surface="test", workspace_id="w1", user_id="bob")
    assert await is_reviewer("users:ann,bob", bob, members)
    assert not await is_reviewer("users:ann", bob, members)
    assert await is_reviewer("group:S1", bob, members)
    assert not await is_reviewer("role:S2", bob, members)


async def test_the_console_has_no_channel_to_review(tmp_path: Path) -> None:
    err, out = io.StringIO(), io.StringIO()

    def console(bot: Any) -> ConsoleChat:
        return ConsoleChat(bot.engine, tmp_path / "out", runner=bot.runner, out=out, err=err)

    async with BotHarness(tmp_path, surfaces=[console]) as bot:
        chat = next(s for s in bot.surfaces if isinstance(s, ConsoleChat))
        await chat.handle("/policy review <@U1> <@U2>")
        await chat.handle("/hidream a quiet harbour")
        await bot.runner.wait_idle()
        assert "in the channel whose requests are to be reviewed" in err.getvalue()
        assert await bot.engine.approvals.pending() == []
        assert [j.prompt for j in sandbox_of(bot).received()] == ["a quiet harbour"]

"""Approvals on Slack against the fake: a workspace admin marks a channel reviewed by a user group; a
request there reaches its requester alone (a direct message) and the queue channel with Approve and
Reject buttons; after a restart a group member's Approve posts it once in the channel with "approved
by" (membership asked of usergroups.users.list), someone else's press is refused, Reject's form tells
the requester why; the audit export says who approved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.slack.review import ACTION_APPROVE, ACTION_REJECT, VIEW_REJECT
from storage import audit
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import TEAM
from tests.support.slack_support import CHANNEL, Running, running

QUEUE, GROUP = "C_QUEUE", "S0REVIEW"
ADMIN, REQUESTER, REVIEWER, STRANGER = "UADMIN001", "UALICE01", "UREVIEW01", "USTRANGE1"


def ephemerals_to(fake: FakeSlack, user: str) -> list[str]:
    return [str(e.get("text")) for e in fake.ephemerals if e.get("user") == user]


def with_files(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages.get(channel, []) if m.get("files")]


async def mark_reviewed(run: Running) -> None:
    fake = run.fake
    fake.admins.add(ADMIN)
    text = f"policy review <!subteam^{GROUP}|@reviewers> to <#{QUEUE}|queue>"
    assert await run.send.command(fake.slash(text, user=ADMIN)) == 200
    said = await fake.wait_for(lambda: [r for r in fake.responses if "now reviewed" in str(r.get("text"))])
    assert f"<!subteam^{GROUP}>" in said[0]["text"] and f"<#{QUEUE}>" in said[0]["text"]


async def request(run: Running, prompt: str) -> dict[str, Any]:
    """The queue's message with the buttons for a new request, once the requester has it privately."""
    fake = run.fake
    assert await run.send.command(fake.slash(prompt, user=REQUESTER)) == 200
    queued = await fake.wait_for(
        lambda: next(
            (m for m in fake.messages.get(QUEUE, []) if m.get("blocks") and prompt in m["text"]), None
        )
    )
    await run.bot.runner.wait_idle()
    assert isinstance(queued, dict)
    assert with_files(fake, QUEUE)  # the reviewers see the image
    assert with_files(fake, f"D{REQUESTER}")  # the requester alone has it
    assert any("This channel is reviewed" in t for t in ephemerals_to(fake, REQUESTER))
    assert with_files(fake, CHANNEL) == [] and not any(
        prompt in str(m.get("text")) for m in fake.messages.get(CHANNEL, [])
    )
    return queued


def approved_posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake.messages.get(CHANNEL, []) if "approved by" in str(m.get("text"))]


async def test_approve_after_a_restart_posts_it_once_with_approved_by(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        fake.usergroups[GROUP] = [REVIEWER]
        async with running(tmp_path, fake, "http") as run:
            await mark_reviewed(run)
            queued = await request(run, "a red kite")
            (pending,) = await run.bot.engine.approvals.pending()
            assert (pending.requester, pending.prompt) == (f"slack:{REQUESTER}", "a red kite")
        async with running(tmp_path, fake, "http") as run:
            assert (
                await run.send.interaction(fake.button(queued, QUEUE, ACTION_APPROVE, user=STRANGER)) == 200
            )
            await fake.wait_for(
                lambda: any("Only this channel's reviewers" in t for t in ephemerals_to(fake, STRANGER))
            )
            assert approved_posts(fake) == []

            # A second press is the same button pressed again on the message as the reviewer saw it
            # (made now: once approved, the queue's message loses its buttons).
            press = fake.button(queued, QUEUE, ACTION_APPROVE, user=REVIEWER)
            again = fake.button(queued, QUEUE, ACTION_APPROVE, user=REVIEWER)
            assert await run.send.interaction(press) == 200
            (posted,) = await fake.wait_for(lambda: approved_posts(fake))
            assert f"approved by <@{REVIEWER}>" in posted["text"] and "a red kite" in str(posted["blocks"])
            await fake.wait_for(lambda: fake.thread(CHANNEL, posted["ts"])[1:] and with_files(fake, CHANNEL))
            assert await run.send.interaction(again) == 200
            await fake.wait_for(lambda: any("already approved" in t for t in ephemerals_to(fake, REVIEWER)))
            assert len(approved_posts(fake)) == 1
            assert [c for c in fake.calls if c[0] == "usergroups.users.list"]

            rows = [r async for r in audit.rows(run.bot.store, since=0, until=float("inf"))]
            assert [r["approved_by"] for r in rows] == [f"slack:{REVIEWER}"]
            assert await run.bot.engine.approvals.pending() == []

            # An operator's take-down removes the requester's copy, the approved post and the queue's
            # message, with their files.
            queued_files = [f["id"] for m in with_files(fake, QUEUE) for f in m["files"]]
            job = await run.bot.engine.job(pending.job_id)
            assert job is not None and queued_files
            # In each place but the queue, a message and its files' message; the queue's message.
            assert await run.adapter.withdraw(job) == 5
            assert approved_posts(fake) == [] and with_files(fake, CHANNEL) == []
            assert with_files(fake, f"D{REQUESTER}") == []
            assert fake.find(QUEUE, queued["ts"]) is None
            assert not [f for f in queued_files if f in fake.files]  # the queue's images are gone


async def test_reject_after_a_restart_tells_the_requester_why(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        fake.usergroups[GROUP] = [REVIEWER]
        async with running(tmp_path, fake, "http") as run:
            await mark_reviewed(run)
            queued = await request(run, "a blue heron")
        async with running(tmp_path, fake, "http") as run:
            assert await run.send.interaction(fake.button(queued, QUEUE, ACTION_REJECT, user=REVIEWER)) == 200
            form = await fake.wait_for(
                lambda: next((v for v in fake.views if v["callback_id"] == VIEW_REJECT), None)
            )
            values = {"reason": {"reason": {"type": "plain_text_input", "value": "off-brand colours"}}}
            assert await run.send.interaction(fake.submission(form, values, user=REVIEWER)) == 200
            told = await fake.wait_for(
                lambda: [
                    m
                    for m in fake.messages.get(f"D{REQUESTER}", [])
                    if "was not approved" in str(m.get("text"))
                ]
            )
            assert "off-brand colours" in told[0]["text"] and "a blue heron" in told[0]["text"]
            await run.bot.runner.wait_idle()
            assert approved_posts(fake) == [] and with_files(fake, CHANNEL) == []
            rows = [r async for r in audit.rows(run.bot.store, since=0, until=float("inf"))]
            assert [r["approved_by"] for r in rows] == [""]


async def policy_review(run: Running, value: str) -> str:
    """What a workspace admin is told for `/hidream policy review <value>`."""
    fake = run.fake
    fake.admins.add(ADMIN)
    before = len(fake.responses)
    assert await run.send.command(fake.slash(f"policy review {value}", user=ADMIN)) == 200
    await fake.wait_for(lambda: len(fake.responses) > before)
    return str(fake.responses[-1].get("text"))


async def test_a_queue_or_reviewers_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        fake.usergroups[GROUP] = [REVIEWER]
        fake.foreign_channels.add("C_ELSEWHERE")
        fake.outsiders.add("UOUTSIDE1")
        async with running(tmp_path, fake, "http") as run:
            said = await policy_review(run, f"<!subteam^{GROUP}> to <#C_ELSEWHERE|theirs>")
            assert "must be a channel of this server or workspace" in said
            assert "someone you named is not here" in await policy_review(run, f"<@{REVIEWER}> <@UOUTSIDE1>")
            assert "someone you named is not here" in await policy_review(
                run, "<!subteam^S0NOPE> to <#C_QUEUE>"
            )
            assert await run.bot.engine.approvals.reviewed(f"slack:{TEAM}", CHANNEL) is None
            assert [p for p in fake.called("conversations.info") if p.get("channel") == "C_ELSEWHERE"]
            await mark_reviewed(run)  # the workspace's own group and channel are taken


async def test_a_thread_is_reviewed_and_a_queue_that_fails_leaves_the_requester_their_image(
    tmp_path: Path,
) -> None:
    async with FakeSlack() as fake:
        fake.usergroups[GROUP] = [REVIEWER]
        async with running(tmp_path, fake, "http") as run:
            await mark_reviewed(run)
            await request(run, "a calm bay")
            # A mention in a thread of the reviewed channel is reviewed too (Slack names the channel).
            talk = fake.mention(CHANNEL, STRANGER, "what a view")["event"][
                "ts"
            ]  # a person's message, not sent to us
            await run.send.event(fake.mention(CHANNEL, REQUESTER, "a misty bay", thread_ts=talk))
            await fake.wait_for(
                lambda: [m for m in fake.messages.get(QUEUE, []) if "a misty bay" in m["text"]]
            )
            await run.bot.runner.wait_idle()
            assert with_files(fake, CHANNEL) == []
            # The bot was removed from the queue: the requester still has their image, and is told.
            fake.closed_channels.add(QUEUE)
            assert await run.send.command(fake.slash("a windy bay", user=REQUESTER)) == 200
            told = await fake.wait_for(
                lambda: [
                    m
                    for m in fake.messages.get(f"D{REQUESTER}", [])
                    if "could not be reached" in str(m.get("text"))
                ]
            )
            await run.bot.runner.wait_idle()
            assert "tell an admin" in told[0]["text"]
            assert len(with_files(fake, f"D{REQUESTER}")) == 3  # each of the three, privately
            pending = await run.bot.engine.approvals.pending()
            jobs = [await run.bot.engine.job(p.job_id) for p in pending]
            assert len(jobs) == 3 and all(j is not None and j.state.value == "delivered" for j in jobs)


async def test_a_take_down_of_a_waiting_result_clears_its_queue(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        fake.usergroups[GROUP] = [REVIEWER]
        async with running(tmp_path, fake, "http") as run:
            await mark_reviewed(run)
            queued = await request(run, "a shy fox")
            files = [f["id"] for m in with_files(fake, QUEUE) for f in m["files"]]
            (pending,) = await run.bot.engine.approvals.pending()
            job = await run.bot.engine.job(pending.job_id)
            assert job is not None and files
            assert await run.adapter.withdraw(job) >= 1
            assert fake.find(QUEUE, queued["ts"]) is None and not [f for f in files if f in fake.files]

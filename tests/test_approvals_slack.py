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

            assert (
                await run.send.interaction(fake.button(queued, QUEUE, ACTION_APPROVE, user=REVIEWER)) == 200
            )
            (posted,) = await fake.wait_for(lambda: approved_posts(fake))
            assert f"approved by <@{REVIEWER}>" in posted["text"] and "a red kite" in str(posted["blocks"])
            await fake.wait_for(lambda: fake.thread(CHANNEL, posted["ts"])[1:] and with_files(fake, CHANNEL))
            assert (
                await run.send.interaction(fake.button(queued, QUEUE, ACTION_APPROVE, user=REVIEWER)) == 200
            )
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

"""Style kits on Slack end to end: real bolt (HTTP mode) against the loopback fake of Slack, the
engine and the sandbox. `/hidream kit save|list|show|delete|bind`: admins save, delete and bind,
anyone lists and shows; `--kit` is applied (the provider receives the prompt between the kit's
prefix and suffix, at its size) and the result says which kit; a bound channel's requests all use
its kit and cannot name another; an edited kit is a new version; another workspace's kit is not
found; an unknown kit is refused with nothing spent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_payloads import TEAM
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, job_id_of, running, summaries

TEAM_B = "T_OTHER01"
ADMIN, BOB = "UADMIN001", "UBOB0001"
SAVE = "kit save watercolor --prefix soft watercolor of --suffix pastel palette --ar 16:9"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        f.admins.add(ADMIN)
        yield f


async def said(fake: FakeSlack, expected: str) -> str:
    found = await fake.wait_for(lambda: [e["text"] for e in fake.responses if expected in e["text"]])
    return str(found[0])


async def test_slack_kits_are_managed_by_admins_and_applied_with_a_flag(
    tmp_path: Path, fake: FakeSlack
) -> None:
    async with running(tmp_path, fake, "http") as run:
        sandbox = sandbox_of(run.bot)
        # Not an admin: saving, deleting and binding are refused.
        for text in (SAVE, "kit delete watercolor", "kit bind watercolor"):
            await run.send.command(fake.slash(text, user=BOB))
        await fake.wait_for(lambda: len([r for r in fake.responses if "Only the admins" in r["text"]]) == 3)
        await run.send.command(fake.slash("kit list", user=BOB))
        await said(fake, "No style kits are saved here yet.")

        await run.send.command(fake.slash(SAVE, user=ADMIN))
        await said(fake, "Saved kit `watercolor` v1.")
        await run.send.command(fake.slash("kit show watercolor", user=BOB))
        await said(
            fake, "Kit `watercolor` v1: prefix: soft watercolor of; suffix: pastel palette; flags: --ar 16:9."
        )

        await run.send.command(fake.slash("a fox in snow --kit watercolor", user=BOB))
        [summary] = await fake.wait_for(lambda: summaries(fake))
        assert "kit watercolor v1" in summary["text"]
        [received] = sandbox.received()
        assert received.prompt == "soft watercolor of a fox in snow pastel palette"
        assert (received.width, received.height) == (1360, 768)

        # Another workspace does not see it; a request naming it there is refused, nothing spent.
        await run.send.command(fake.slash("kit show watercolor", team=TEAM_B))
        await said(fake, "There is no style kit named `watercolor` here; nothing was spent. None are saved")
        await run.send.command(fake.slash("a fox --kit watercolor", team=TEAM_B))
        await fake.wait_for(
            lambda: len([r for r in fake.responses if "no style kit named" in r["text"]]) == 2
        )
        assert sandbox.submits == 1

        # An edit of the kit is its next version; the result made before still used the first.
        await run.send.command(fake.slash(SAVE.replace("pastel", "muted"), user=ADMIN))
        await said(fake, "Saved kit `watercolor` v2.")
        first = await run.bot.engine.job(job_id_of(summary))
        assert first is not None and (first.request.kit, first.request.kit_version) == ("watercolor", 1)

        await run.send.command(fake.slash("kit delete watercolor", user=ADMIN))
        await said(fake, "Deleted kit `watercolor`")
        await run.send.command(fake.slash("a fox --kit watercolor", user=BOB))
        await fake.wait_for(
            lambda: len([r for r in fake.responses if "no style kit named" in r["text"]]) == 3
        )
        assert sandbox.submits == 1 and (await run.bot.engine.quota("slack", BOB, TEAM)).used == 1


async def test_slack_a_bound_kit_is_applied_and_not_removable(tmp_path: Path, fake: FakeSlack) -> None:
    async with running(tmp_path, fake, "http") as run:
        sandbox = sandbox_of(run.bot)
        await run.send.command(fake.slash(SAVE, user=ADMIN))
        await run.send.command(fake.slash("kit save noir --prefix black and white", user=ADMIN))
        await run.send.command(fake.slash("kit bind watercolor", user=ADMIN))
        await said(fake, "Every request in this channel now uses the kit `watercolor`")

        await run.send.command(fake.slash("a harbour --ar 1:1", user=BOB))
        [summary] = await fake.wait_for(lambda: summaries(fake))
        assert "kit watercolor v1" in summary["text"]
        [received] = sandbox.received()
        # The kit applies; the person's own flags still win over its defaults.
        assert received.prompt == "soft watercolor of a harbour pastel palette"
        assert (received.width, received.height) == (1024, 1024)

        # An edit mentioned in the result's thread is a request in the channel too.
        await run.send.event(fake.mention(CHANNEL, BOB, "make it night", thread_ts=summary["thread_ts"]))
        edited = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        edit = await run.bot.engine.job(job_id_of(edited))
        assert edit is not None and edit.mode == "edit" and edit.request.kit == "watercolor"
        assert edit.request.prompt == "soft watercolor of make it night pastel palette"

        # Naming another kit here is refused, and nothing is spent.
        await run.send.command(fake.slash("a harbour --kit noir", user=BOB))
        await said(fake, "This channel always uses the kit `watercolor`, so `--kit noir` cannot replace it")
        assert sandbox.submits == 2 and (await run.bot.engine.quota("slack", BOB, TEAM)).used == 2

        # Another channel is not bound; `noir` applies there when asked for.
        await run.send.command(fake.slash("a harbour --kit noir", user=BOB, channel="C_OTHER"))
        await fake.wait_for(lambda: summaries(fake, "C_OTHER"))
        assert sorted(j.prompt for j in sandbox.received())[0] == "black and white a harbour"

        await run.send.command(fake.slash("kit list", user=BOB))
        listing: Any = await said(fake, "Style kits:")
        assert "`noir` v1" in listing and "`watercolor` v1 (this channel's kit)" in listing

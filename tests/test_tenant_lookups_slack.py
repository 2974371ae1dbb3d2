"""Slack: a file merely named like another workspace's result is the plain file it is, downloaded
like any other image; in a channel shared by two workspaces, a Reroll counts in the presser's
workspace. The real bolt app (Socket Mode) against the loopback fake of Slack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.slack.translate import ACTION_REROLL, BLOCK_INSTRUCTION
from bot.words import NOT_FOUND
from tests.fakes.slack import FakeSlack
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, job_id_of, png, running, summaries

OTHER_TEAM = "T_OTHER"
BOB = "UBOB0001"


def from_team(payload: dict[str, Any], team: str) -> dict[str, Any]:
    """The payload as Slack sends it for a person of `team`."""
    return {**payload, "team": {"id": team}, "user": {**payload["user"], "team_id": team}}


async def first_result(run: Any) -> dict[str, Any]:
    await run.send.command(run.fake.slash("a secret blueprint --seed 5"))
    found: list[dict[str, Any]] = await run.fake.wait_for(lambda: summaries(run.fake))
    await run.bot.runner.wait_idle()
    return found[0]


async def test_a_file_named_like_another_workspaces_result_is_downloaded_as_a_plain_file(
    tmp_path: Path,
) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        made = await run.bot.engine.job(job_id_of(await first_result(run)))
        assert made is not None
        theirs = (await run.bot.engine.result_images(made))[0].data
        # Someone of another workspace uploads a picture of their own under that result's file name.
        mine = png("green")
        upload = fake.add_file(f"hidream-{made.id}-1.png", mine, "image/png", user=BOB)
        message = fake.add_message(CHANNEL, BOB, "look", files=[upload])
        await run.send.interaction(from_team(fake.shortcut(message, CHANNEL, user=BOB), OTHER_TEAM))
        view = (await fake.wait_for(lambda: fake.views))[0]
        values = {BLOCK_INSTRUCTION: {"text": {"type": "plain_text_input", "value": "make it gold"}}}
        await run.send.interaction(from_team(fake.submission(view, values, user=BOB), OTHER_TEAM))
        summary = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        await run.bot.runner.wait_idle()
        edit = await run.bot.engine.job(job_id_of(summary))
        assert edit is not None and edit.workspace_id == OTHER_TEAM and edit.mode == "edit"
        assert edit.parent_job_id is None and edit.reference_media != made.result_media
        assert fake.downloads == [(upload["id"], True)]
        (sent,) = [j for j in sandbox_of(run.bot).received() if j.prompt == "make it gold"]
        assert sent.references == [mine] != [theirs]


async def test_a_reroll_in_a_shared_channel_counts_in_the_pressers_workspace(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        engine = run.bot.engine
        summary = await first_result(run)
        home = fake.slash("x")["team_id"]
        assert (await engine.quota("slack", "UALICE01", home)).used == 1
        press = from_team(fake.button(summary, CHANNEL, ACTION_REROLL, user=BOB), OTHER_TEAM)
        await run.send.interaction(press)
        again = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        await run.bot.runner.wait_idle()
        job = await engine.job(job_id_of(again))
        assert job is not None and job.parent_job_id == job_id_of(summary)
        assert (job.workspace_id, job.user_id) == (OTHER_TEAM, BOB)
        assert (await engine.quota("slack", BOB, OTHER_TEAM)).used == 1
        assert (await engine.quota("slack", "UALICE01", home)).used == 1
        assert (await engine.quota("slack", BOB, home)).used == 0


async def test_another_workspaces_thread_answers_undo_and_history_with_not_found(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        engine = run.bot.engine
        summary = await first_result(run)
        thread = f"{CHANNEL}:{summary['thread_ts']}"
        head = await engine.latest_job_in_thread("slack", thread)
        assert head is not None and head.id == job_id_of(summary)
        posted = len(fake.messages[CHANNEL])
        for command in ("undo", "history"):
            seen = len(fake.ephemerals)
            event = fake.mention(CHANNEL, BOB, command, thread_ts=summary["thread_ts"])
            event["team_id"] = event["event"]["team"] = OTHER_TEAM
            await run.send.event(event)
            [told] = await fake.wait_for(lambda: fake.ephemerals[seen:])  # noqa: B023 (awaited here)
            assert (told["user"], told["text"]) == (BOB, NOT_FOUND)
        assert await engine.latest_job_in_thread("slack", thread) == head
        # Only the two mentions themselves were added to the channel: the bot said nothing there.
        assert len(fake.messages[CHANNEL]) == posted + 2
        assert sandbox_of(run.bot).submits == 1

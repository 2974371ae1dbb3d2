"""Saved subjects on Slack end to end: real bolt (HTTP mode) against the loopback fake of Slack, the
engine and the sandbox. A mention with files and `save subject <name>` saves them; `--subject` and
`@name` use them (the provider receives their images: personalization for two); a mention in a
result's thread saves that thread's latest image; the "Save as subject" button asks for a name in a
modal; list, show and delete; another workspace's subjects are invisible; duplicates, bad names and
a delete by someone who neither saved it nor administers the workspace are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.subjects import BLOCK_NAME
from adapters.slack.translate import ACTION_SUBJECT, VIEW_SUBJECT
from tests.fakes.slack import FakeSlack
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, job_id_of, png, running, summaries

TEAM_B = "T_OTHER01"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def said(fake: FakeSlack, where: list[dict[str, Any]], expected: str) -> str:
    found = await fake.wait_for(lambda: [e["text"] for e in where if expected in e["text"]])
    return str(found[0])


def in_team(event: dict[str, Any], team: str) -> dict[str, Any]:
    event["team_id"] = event["event"]["team"] = team
    event["authorizations"][0]["team_id"] = team
    return event


async def test_slack_subject_saved_from_files_is_used_by_flag_and_by_name(
    tmp_path: Path, fake: FakeSlack
) -> None:
    cat, dog = png("orange"), png("brown", (80, 80))
    files = [fake.add_file("cat.png", cat, "image/png"), fake.add_file("dog.png", dog, "image/png")]
    async with running(tmp_path, fake, "http") as run:
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "save subject Mascot", files=files))
        await said(fake, fake.ephemerals, "Saved subject `Mascot` (2 image(s))")
        sandbox = sandbox_of(run.bot)
        assert sandbox.submits == 0 and not summaries(fake)

        await run.send.command(fake.slash("tea party --subject mascot"))
        await run.send.event(fake.mention(CHANNEL, "UBOB0001", "@mascot on a boat"))
        found = await fake.wait_for(lambda: summaries(fake)[1:] and summaries(fake))
        for summary in found:
            job = await run.bot.engine.job(job_id_of(summary))
            assert job is not None and job.mode == "personalization"
        received = {j.prompt: j for j in sandbox.received()}
        assert received["tea party"].references == [cat, dog]
        assert received["@mascot on a boat"].references == [cat, dog]

        # Another workspace sees none of them.
        await run.send.command(fake.slash("party --subject mascot", team=TEAM_B))
        await said(fake, fake.responses, "There is no subject named `mascot` here")
        await run.send.event(in_team(fake.mention(CHANNEL, "UCAROL01", "@mascot alone"), TEAM_B))
        third = (await fake.wait_for(lambda: summaries(fake)[2:]))[0]
        job_b = await run.bot.engine.job(job_id_of(third))
        assert job_b is not None and job_b.mode == "text-to-image" and job_b.workspace_id == TEAM_B
        await run.send.command(fake.slash("subject list", team=TEAM_B))
        await said(fake, fake.responses, "No subjects are saved here yet.")
        await run.send.command(fake.slash("subject list"))
        await said(fake, fake.responses, "`Mascot`: 2 image(s)")


async def test_slack_subject_from_a_thread_the_button_show_and_refusals(
    tmp_path: Path, fake: FakeSlack
) -> None:
    fake.admins.add("UADMIN001")
    owl = png("purple")
    async with running(tmp_path, fake, "http") as run:
        await run.send.command(fake.slash("a lighthouse --n 2 --seed 4"))
        first = (await fake.wait_for(lambda: summaries(fake)))[0]
        made = await run.bot.engine.job(job_id_of(first))
        assert made is not None
        # In the result's thread: that thread's latest image.
        await run.send.event(
            fake.mention(CHANNEL, "UALICE01", "save subject tower", thread_ts=first["thread_ts"])
        )
        await said(fake, fake.ephemerals, "Saved subject `tower` (1 image(s))")
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "@tower at night"))
        second = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        edit = await run.bot.engine.job(job_id_of(second))
        assert edit is not None and edit.mode == "edit" and edit.reference_media == made.result_media[-1:]

        # The button: a modal asks for the name; a bad one is shown in the modal, a good one saves.
        await run.send.interaction(fake.button(first, CHANNEL, ACTION_SUBJECT))
        view = (await fake.wait_for(lambda: fake.views))[0]
        assert view["callback_id"] == VIEW_SUBJECT
        bad = await run.send.interaction(
            fake.submission(view, {BLOCK_NAME: {"name": {"value": "two words"}}})
        )
        assert bad == 200
        await run.send.interaction(fake.submission(view, {BLOCK_NAME: {"name": {"value": "pair"}}}))
        await said(fake, fake.ephemerals, "Saved subject `pair` (2 image(s))")
        await run.send.command(fake.slash("robots --subject pair"))
        third = (await fake.wait_for(lambda: summaries(fake)[2:]))[0]
        pair_job = await run.bot.engine.job(job_id_of(third))
        assert pair_job is not None and pair_job.mode == "personalization"
        assert pair_job.reference_media == made.result_media

        # Refusals: a duplicate (any case), a bad name, too many images in all.
        upload = fake.add_file("owl.png", owl, "image/png")
        await run.send.event(fake.mention(CHANNEL, "UBOB0001", "save subject TOWER", files=[upload]))
        await said(fake, fake.ephemerals, "A subject named `tower` already exists here")
        await run.send.event(fake.mention(CHANNEL, "UBOB0001", "save subject owl!", files=[upload]))
        await said(fake, fake.ephemerals, "`owl!` is not a subject name")
        extra = fake.add_file("owl2.png", owl, "image/png")
        crowd = fake.mention(CHANNEL, "UBOB0001", "crowd --subject pair @tower", files=[upload, extra])
        await run.send.event(crowd)
        await said(
            fake, fake.ephemerals, "That is 5 images in all: subjects `pair` (2), `tower` (1) and 2 attached"
        )
        submits = sandbox_of(run.bot).submits

        # Show posts the images into the channel.
        await run.send.command(fake.slash("subject show tower"))
        shown = await fake.wait_for(
            lambda: [
                m
                for m in fake.messages.get(CHANNEL, [])
                if m.get("upload") and "Subject `tower`" in m["text"]
            ]
        )
        assert [fake.files[f["id"]].data for f in shown[0]["files"]] == [
            (await run.bot.store.media(made.result_media[-1])).data  # type: ignore[union-attr]
        ]

        # Delete: not by someone else; by a workspace admin; by its creator.
        await run.send.command(fake.slash("subject delete tower", user="UBOB0001"))
        await said(fake, fake.responses, "Only the person who saved `tower`")
        await run.send.event(fake.mention(CHANNEL, "UADMIN001", "subject delete tower"))
        await said(fake, fake.ephemerals, "Deleted subject `tower`.")
        await run.send.command(fake.slash("subject delete pair"))
        await said(fake, fake.responses, "Deleted subject `pair`.")
        await run.bot.runner.wait_idle()
        assert sandbox_of(run.bot).submits == submits

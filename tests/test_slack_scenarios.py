"""The Slack adapter end to end: real bolt (HTTP mode over real HTTP with signed requests, and Socket
Mode over a real websocket) against the loopback fake of Slack, the real engine and the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack.translate import (
    ACTION_DELETE,
    ACTION_EDIT,
    ACTION_MORE,
    ACTION_REMIX,
    ACTION_REROLL,
    ACTION_SQUARE,
    ACTION_SUBJECT,
    ACTION_UPSCALE,
    ACTION_VARY,
    ACTION_VARY_STRONG,
    ACTION_ZOOM_2,
    ACTION_ZOOM_15,
    BLOCK_IMAGE,
    BLOCK_INSTRUCTION,
)
from bot.words import LIMITS_REFUSED
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.support.harness import RecordedLines, until
from tests.support.slack_support import (
    CHANNEL,
    command_to_result,
    file_messages,
    job_id_of,
    png,
    roots,
    running,
    summaries,
)

pytestmark = pytest.mark.parametrize("mode", ["http", "socket"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_command_to_image_in_the_thread(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        summary = await command_to_result(run)
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None and job.seed == 7
        [root] = roots(fake)
        assert summary["thread_ts"] == root["ts"] == job.origin["thread_ts"]
        # The root names the requester and the prompt, and ends up saying it is done.
        assert "<@UALICE01>" in root["text"] and "a red fox in snow" in root["text"]
        await fake.wait_for(lambda: "Done: 1 image" in root["blocks"][1]["elements"][0]["text"])
        [files_msg] = file_messages(fake, root["ts"])
        [f] = files_msg["files"]
        assert f["name"] == f"hidream-{job.id}-1.png" and f["mimetype"] == "image/png"
        assert fake.files[f["id"]].data.startswith(b"\x89PNG")
        upload = fake.called("files.completeUploadExternal")[-1]
        assert upload["channel_id"] == CHANNEL and upload["thread_ts"] == root["ts"]
        *buttons, more = summary["blocks"][-1]["elements"]
        assert [b["action_id"] for b in buttons] == [
            ACTION_REROLL,
            ACTION_VARY,
            ACTION_VARY_STRONG,
            ACTION_EDIT,
            ACTION_UPSCALE,
            ACTION_ZOOM_15,
            ACTION_ZOOM_2,
            ACTION_SQUARE,
            ACTION_REMIX,
            ACTION_DELETE,
            ACTION_SUBJECT,
        ]
        assert {b["value"] for b in buttons} == {job.id}
        # The Pans in the overflow menu, each option naming its action and the job.
        assert more["type"] == "overflow" and more["action_id"] == ACTION_MORE
        assert {o["value"].split(":")[1] for o in more["options"]} == {job.id}
        if mode == "socket":
            assert fake.called("apps.connections.open")


async def test_retried_event_makes_no_second_job(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    event = fake.mention(CHANNEL, "UALICE01", "a lighthouse at dusk")
    async with running(tmp_path, fake, mode) as run:
        assert await run.send.event(event) == 200
        assert await run.send.event(event, retry_num=1) == 200
        await fake.wait_for(lambda: summaries(fake))
        await run.bot.runner.wait_idle()
        assert await run.job_count() == 1
    # After a restart (or on another replica) the database still knows the event: the resend is
    # dropped before anything is posted.
    posted = len(fake.called("chat.postMessage"))
    dropped = RecordedLines("adapters.slack.handlers", "already handled")
    async with running(tmp_path, fake, mode) as run:
        with dropped:
            assert await run.send.event(event, retry_num=2) == 200
            await until(lambda: dropped.lines)
        await run.bot.runner.wait_idle()
        assert await run.job_count() == 1
    assert len(fake.called("chat.postMessage")) == posted
    assert not fake.called("chat.delete")
    assert len(summaries(fake)) == 1
    # Exactly one status message is in the thread.
    statuses = [
        m for m in fake.thread(CHANNEL, event["event"]["ts"]) if m.get("bot_id") and not m.get("files")
    ]
    assert len([m for m in statuses if "asked for" in m["text"]]) == 1


async def test_mention_in_a_thread_edits_its_latest_image(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        first = await command_to_result(run)
        first_job = await run.bot.engine.job(job_id_of(first))
        assert first_job is not None
        thread_ts = first["thread_ts"]
        await run.send.event(fake.mention(CHANNEL, "UBOB0001", "make it night", thread_ts=thread_ts))
        second = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        job = await run.bot.engine.job(job_id_of(second))
        assert job is not None
        assert job.mode == "edit" and job.user_id == "UBOB0001"
        assert job.parent_job_id == first_job.id
        assert job.reference_media == first_job.result_media[-1:]
        assert second["thread_ts"] == thread_ts
        assert len(file_messages(fake, thread_ts)) == 2


async def test_mention_with_two_files_personalizes(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    files = [
        fake.add_file("cat.png", png("orange"), "image/png"),
        fake.add_file("dog.png", png("brown"), "image/png"),
    ]
    async with running(tmp_path, fake, mode) as run:
        event = fake.mention(CHANNEL, "UALICE01", "these two on a beach", files=files)
        await run.send.event(event)
        summary = (await fake.wait_for(lambda: summaries(fake)))[0]
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None and job.mode == "personalization" and len(job.reference_media) == 2
        # Private files were fetched with the bot token.
        assert sorted(fake.downloads) == sorted([(files[0]["id"], True), (files[1]["id"], True)])
        assert summary["thread_ts"] == event["event"]["ts"]


async def test_ack_comes_before_any_file_download(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    photo = fake.add_file("photo.png", png("blue"), "image/png")
    fake.download_gate.clear()
    async with running(tmp_path, fake, mode) as run:
        assert (
            await run.send.event(fake.mention(CHANNEL, "UALICE01", "as a watercolor", files=[photo])) == 200
        )
        # Slack got its answer while the file was still held back by the fake.
        await fake.wait_for(lambda: fake.downloads)
        assert not summaries(fake)
        fake.download_gate.set()
        summary = (await fake.wait_for(lambda: summaries(fake)))[0]
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None and job.mode == "edit"


async def test_command_ack_inside_three_seconds_while_provider_is_slow(
    tmp_path: Path, fake: FakeSlack, mode: str
) -> None:
    async with running(tmp_path, fake, mode, HIDREAM_SANDBOX_DELAY_SECONDS=3600) as run:
        loop_time = __import__("asyncio").get_running_loop().time
        start = loop_time()
        assert await run.send.command(fake.slash("a slow painting")) == 200
        assert loop_time() - start < 3.0
        [root] = await fake.wait_for(lambda: roots(fake))
        assert "a slow painting" in root["text"]
        assert not summaries(fake)


async def test_shortcut_opens_a_modal_and_its_submission_edits(
    tmp_path: Path, fake: FakeSlack, mode: str
) -> None:
    logo = fake.add_file("logo.png", png("green"), "image/png")
    message = fake.add_message(CHANNEL, "UALICE01", "our logo", files=[logo])
    async with running(tmp_path, fake, mode) as run:
        await run.send.interaction(fake.shortcut(message, CHANNEL))
        view = (await fake.wait_for(lambda: fake.views))[0]
        assert view["callback_id"] == "hidream_edit_modal"
        values = {BLOCK_INSTRUCTION: {"text": {"type": "plain_text_input", "value": "make it gold --seed 3"}}}
        await run.send.interaction(fake.submission(view, values))
        summary = (await fake.wait_for(lambda: summaries(fake)))[0]
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None and job.mode == "edit" and job.seed == 3
        assert summary["thread_ts"] == message["ts"]
        assert fake.called("files.info")[0]["file"] == logo["id"]
        assert fake.downloads == [(logo["id"], True)]


async def test_buttons_work_after_a_restart(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        first = await command_to_result(run, "a tiny robot --n 2")
        first_id = job_id_of(first)
    async with running(tmp_path, fake, mode) as run:
        await run.send.interaction(fake.button(first, CHANNEL, ACTION_REROLL, user="UBOB0001"))
        second = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        job = await run.bot.engine.job(job_id_of(second))
        assert job is not None and job.parent_job_id == first_id and job.user_id == "UBOB0001"
        assert job.request.prompt == "a tiny robot" and second["thread_ts"] == first["thread_ts"]

        await run.send.interaction(fake.button(first, CHANNEL, ACTION_EDIT))
        view = (await fake.wait_for(lambda: fake.views))[0]
        assert view["blocks"][1]["block_id"] == BLOCK_IMAGE  # two images: which one?
        values = {
            BLOCK_INSTRUCTION: {"text": {"value": "add a hat"}},
            BLOCK_IMAGE: {"which": {"selected_option": {"value": "1"}}},
        }
        await run.send.interaction(fake.submission(view, values))
        third = (await fake.wait_for(lambda: summaries(fake)[2:]))[0]
        edit = await run.bot.engine.job(job_id_of(third))
        first_job = await run.bot.engine.job(first_id)
        assert edit is not None and first_job is not None
        assert edit.reference_media == [first_job.result_media[1]]

        # Someone else may not delete Alice's result; Alice may.
        await run.send.interaction(fake.button(first, CHANNEL, ACTION_DELETE, user="UMALLORY1"))
        await fake.wait_for(lambda: any("Only the person" in e["text"] for e in fake.ephemerals))
        assert fake.find(CHANNEL, first["ts"]) is not None
        await run.send.interaction(fake.button(first, CHANNEL, ACTION_DELETE, user="UALICE01"))
        await fake.wait_for(lambda: fake.find(CHANNEL, first["ts"]) is None)
        names = [f["name"] for m in file_messages(fake, first["thread_ts"]) for f in m["files"]]
        assert not any(first_id in n for n in names)
        assert len(names) == 2 + 1  # the reroll's two images and the edit's one remain


async def test_quota_exceeded_is_told_with_its_limit(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode, HIDREAM_DAILY_IMAGE_QUOTA=1) as run:
        await command_to_result(run, "first")
        assert await run.send.command(fake.slash("second")) == 200
        reply = await fake.wait_for(lambda: [r for r in fake.responses if "limit" in r["text"].lower()])
        assert "1" in reply[0]["text"] and "reset" in reply[0]["text"].lower()
        await run.bot.runner.wait_idle()
        # The refused request left nothing in the channel and spent nothing.
        assert len(roots(fake)) == 1 and await run.job_count() == 1


async def test_usage_and_admin_limits(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    fake.admins.add("UADMIN001")
    async with running(tmp_path, fake, mode, HIDREAM_DAILY_IMAGE_QUOTA=5) as run:
        await run.send.command(fake.slash("usage"))
        await fake.wait_for(lambda: any("5 of 5" in r["text"] for r in fake.responses))
        await run.send.command(fake.slash("limit <@UBOB0001|bob> 0", user="UALICE01"))
        await fake.wait_for(lambda: any(r["text"] == LIMITS_REFUSED for r in fake.responses))
        await run.send.command(fake.slash("limit <@UBOB0001|bob> 0", user="UADMIN001"))
        await fake.wait_for(lambda: any("0 images a day" in r["text"] for r in fake.responses))
        await run.send.command(fake.slash("a cat", user="UBOB0001"))
        await fake.wait_for(
            lambda: any("0 of 0" in r["text"] or "limit" in r["text"] for r in fake.responses[3:])
        )
        assert await run.job_count() == 0


async def test_bad_flag_is_answered_and_nothing_is_posted(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        assert await run.send.command(fake.slash("a cat --steps 900")) == 200
        reply = await fake.wait_for(lambda: fake.responses)
        assert "--steps" in reply[0]["text"]
        assert not roots(fake) and await run.job_count() == 0


async def test_delivery_is_idempotent_per_job(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        summary = await command_to_result(run)
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None
        images = await run.bot.engine.result_images(job)
        posts = await run.adapter.deliver(job, images)
        assert posts[0].message_key == f"{CHANNEL}:{summary['ts']}"
        assert len(summaries(fake)) == 1 and len(file_messages(fake, summary["thread_ts"])) == 1
    assert BOT_USER  # the fake's bot identity is what auth.test reported


async def test_failed_generation_is_told_in_the_thread(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode, HIDREAM_DAILY_IMAGE_QUOTA=3) as run:
        assert await run.send.command(fake.slash("a cat sandbox-fail")) == 200
        [root] = await fake.wait_for(lambda: roots(fake))
        told = await fake.wait_for(
            lambda: [
                m for m in fake.thread(CHANNEL, root["ts"]) if "sandbox-fail" in m["text"] and m is not root
            ]
        )
        assert told[0]["text"].startswith("<@UALICE01>")
        assert told[0]["text"].endswith("Your quota was given back.")  # and the person is told so
        await fake.wait_for(lambda: "Not done" in root["blocks"][1]["elements"][0]["text"])
        assert not summaries(fake)
        # Its quota was given back.
        status = await run.bot.engine.quota("slack", "UALICE01", "T0001")
        assert status.remaining == 3


async def test_typed_url_to_a_private_address_is_refused(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        assert await run.send.command(fake.slash("a cat like http://127.0.0.1:9/cat.png")) == 200
        reply = await fake.wait_for(lambda: fake.responses)
        assert "127.0.0.1" in reply[0]["text"] or "address" in reply[0]["text"].lower()
        await fake.wait_for(lambda: not roots(fake))
        assert await run.job_count() == 0


async def test_attached_file_that_is_no_image_is_refused_privately(
    tmp_path: Path, fake: FakeSlack, mode: str
) -> None:
    notes = fake.add_file("notes.pdf", b"%PDF-1.4 not an image", "application/pdf")
    async with running(tmp_path, fake, mode) as run:
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "make it pretty", files=[notes]))
        [note] = await fake.wait_for(lambda: fake.ephemerals)
        assert note["user"] == "UALICE01" and "notes.pdf" in note["text"] and "not an image" in note["text"]
        assert not fake.downloads and await run.job_count() == 0

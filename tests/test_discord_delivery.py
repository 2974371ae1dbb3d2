"""Discord delivery: upload limits, sensitive images, expired interaction tokens, idempotent posting,
and the acknowledgement racing a slow file host and provider."""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import Image

from adapters.discord.posting import prepare_files
from bot.model.jobs import JobState, OutputImage
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, png, with_files
from tests.support.discord import job_with
from tests.support.harness import sandbox_of, until
from tests.support.holding import holding, release_all


def noisy_png(side: int = 512) -> bytes:
    """Incompressible pixels: a PNG far bigger than its JPEG."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), bytes((i * 7919) % 251 for i in range(side * side * 3))).save(
        buf, "PNG"
    )
    return buf.getvalue()


async def test_oversized_image_is_reencoded_under_the_channel_limit_and_said_so() -> None:
    data = noisy_png()
    limit = len(data) // 3
    image = OutputImage("m1", data, "image/png", 512, 512)
    prepared = await prepare_files([image], job_with({"upload_limit": limit}), "spoiler")
    (file,) = prepared.files
    assert len(file.fp.read()) <= limit
    assert any("re-encoded" in note and "upload limit" in note for note in prepared.notes)


async def test_sensitive_images_follow_the_policy_outside_age_restricted_channels() -> None:
    flagged = OutputImage("m1", png(), "image/png", 64, 48, nsfw=True)
    clean = OutputImage("m2", png(), "image/png", 64, 48)
    spoiler = await prepare_files([flagged, clean], job_with({"nsfw": False}), "spoiler")
    assert [f.spoiler for f in spoiler.files] == [True, False]
    blocked = await prepare_files([flagged, clean], job_with({"nsfw": False}), "block")
    assert len(blocked.files) == 1 and "not posted" in blocked.notes[0]
    adult = await prepare_files([flagged], job_with({"nsfw": True}), "block")
    assert [f.spoiler for f in adult.files] == [False] and adult.notes == []


async def test_result_over_the_upload_limit_is_shrunk_end_to_end(tmp_path: Path) -> None:
    async with FakeDiscord(upload_limit=40_000) as fake, discord_bot(tmp_path, fake) as (bot, _):
        payload = await fake.interact(
            fake.slash_payload({"prompt": "a detailed forest", "size": "square_hd"})
        )
        result = await fake.wait_for(
            lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
        )
        await bot.runner.wait_idle()
        job = await bot.engine.job_for_post("discord", result["id"])
        assert job is not None
        (original,) = await bot.engine.result_images(job)
        assert len(original.data) > 40_000, (
            "the sandbox image must exceed the limit for this test to mean anything"
        )
        assert result["attachments"][0]["size"] <= 40_000
        assert "re-encoded to fit this channel's" in result["content"]


async def test_expired_interaction_token_posts_an_ordinary_message_once(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, adapter):
        payload = fake.slash_payload({"prompt": "a slow painting"})
        fake.expired_tokens.add(payload["token"])
        await fake.interact(payload)
        posted = await fake.wait_for(
            lambda: [m for m in fake.visible(fake.channel_id) if with_files(m) and custom_ids(m)]
        )
        await bot.runner.wait_idle()
        assert posted[0]["nonce"] and len(posted[0]["nonce"]) <= 25
        job = await bot.engine.job_for_post("discord", posted[0]["id"])
        assert job is not None and job.state == JobState.DELIVERED

        # A crash between posting and recording makes the engine deliver again: still one message.
        again = await adapter.deliver(job, await bot.engine.result_images(job))
        assert [p.message_key for p in again] == [posted[0]["id"]]
        assert len([m for m in fake.visible(fake.channel_id) if with_files(m)]) == 1


async def test_redelivery_through_a_live_token_edits_the_same_message(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, adapter):
        payload = await fake.interact(fake.slash_payload({"prompt": "a teapot"}))
        await fake.wait_for(
            lambda: with_files(fake.messages.get(fake.originals.get(payload["token"], ""), {}))
        )
        await bot.runner.wait_idle()
        job = await bot.engine.job_for_post("discord", fake.originals[payload["token"]])
        assert job is not None
        posts = await adapter.deliver(job, await bot.engine.result_images(job))
        assert posts[0].message_key == fake.originals[payload["token"]]
        assert posts[0].thread_key == posts[0].message_key  # the thread exists already: same id, no error
        assert len([m for m in fake.visible() if with_files(m)]) == 1


async def test_acknowledged_within_3_seconds_while_files_and_provider_are_slow(tmp_path: Path) -> None:
    env = {"HIDREAM_SANDBOX_DELAY_SECONDS": 600}
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake, env=env) as (bot, _):
        att = fake.host_file(fake.channel_id, "ref.png", png(), "image/png")
        fake.cdn_gate.clear()  # the attachment download hangs until the test lets it go
        payload = fake.slash_payload({"prompt": "slow one"}, attachments=[att])
        sent = time.monotonic()
        await fake.interact(payload)
        await fake.wait_for(lambda: payload["id"] in fake.acks)
        kind, acked_at = fake.acks[payload["id"]]
        assert kind == 5 and acked_at - sent < 3.0
        await fake.wait_for(lambda: fake.cdn_hits)
        assert sandbox_of(bot).submits == 0  # acknowledged while the reference was still being fetched

        fake.cdn_gate.set()
        original = fake.originals[payload["token"]]
        # The progress line appears once the file arrived and the job was admitted; the provider takes its time.
        await fake.wait_for(lambda: fake.messages[original]["content"].startswith("⏳"))
        assert not with_files(fake.messages[original])


async def test_the_result_replaces_the_progress_line_with_no_uploading_edit_before_it(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        payload = await fake.interact(fake.slash_payload({"prompt": "a lighthouse"}))
        await fake.wait_for(
            lambda: with_files(fake.messages.get(fake.originals.get(payload["token"], ""), {}))
        )
        await bot.runner.wait_idle()
        original = fake.originals[payload["token"]]
        edits = [c for c in fake.calls if c.method == "PATCH" and c.path.endswith(f"/messages/{original}")]
        shown = [str((c.body or {}).get("content", "")) for c in edits]
        assert shown[0].startswith("⏳")  # the progress line came first
        assert not any("Uploading" in text for text in shown), shown
        assert edits[-1].files and not any(c.files for c in edits[:-1])  # the image, in the last edit only


async def test_a_result_whose_progress_line_is_gone_is_posted_whole_in_the_channel(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        provider = holding(bot)
        payload = await fake.interact(fake.slash_payload({"prompt": "a lighthouse"}))
        await until(lambda: len(provider.held) == 1)
        original = fake.originals[payload["token"]]
        await fake.wait_for(lambda: str(fake.messages[original].get("content", "")).startswith("⏳"))
        del fake.messages[original]  # someone deleted the progress line: editing it fails (404)
        await release_all(bot, provider)
        await bot.runner.wait_idle()
        (message,) = [m for m in fake.visible() if with_files(m)]
        job = await bot.engine.job_for_post("discord", message["id"])
        assert job is not None
        (image,) = await bot.engine.result_images(job)
        posted = [c for c in fake.calls if c.method == "POST" and c.path.endswith("/messages") and c.files]
        # The failed edit read the file to its end: the post in the channel sends it again, whole.
        assert [f[1] for c in posted for f in c.files] == [image.data]

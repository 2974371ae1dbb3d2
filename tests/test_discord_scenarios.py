"""Discord end to end: the real discord.py, connected to the loopback FakeDiscord, through the engine
and the sandbox provider."""

from __future__ import annotations

from pathlib import Path

from bot.model.jobs import JobState
from tests.fakes.discord import EPHEMERAL, FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, png, with_files
from tests.support.harness import sandbox_of
from tests.support.toolbox import TOOL_IDS


async def test_slash_command_posts_image_with_summary_buttons_and_thread(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        names = {c["name"] for c in fake.commands["global"]}
        assert {"hidream", "hidream-usage", "hidream-help", "hidream-admin", "Edit with HiDream"} <= names
        hidream = next(c for c in fake.commands["global"] if c["name"] == "hidream")
        option_names = [o["name"] for o in hidream["options"]]
        assert option_names[0] == "prompt" and {"image", "image2", "image3", "image4"} <= set(option_names)

        payload = await fake.interact(fake.slash_payload({"prompt": "a red fox in snow", "seed": 7}))
        await fake.wait_for(lambda: payload["id"] in fake.acks)
        assert fake.acks[payload["id"]][0] == 5  # deferred first
        original_id = fake.originals[payload["token"]]
        result = await fake.wait_for(
            lambda: with_files(fake.messages[original_id]) and fake.messages[original_id]
        )
        await bot.runner.wait_idle()

        job = await bot.engine.job_for_post("discord", original_id)
        assert job is not None and job.state == JobState.DELIVERED
        assert "a red fox in snow" in result["content"] and "seed `7`" in result["content"]
        assert f"<@{payload['member']['user']['id']}>" in result["content"]
        assert custom_ids(result) == [
            f"hidream:{a}:{job.id}"
            for a in ("reroll", "vary", "vary_strong", "edit", *TOOL_IDS, "remix", "delete", "subject")
        ]
        path = result["attachments"][0]["url"].split("/cdn/")[1].split("?")[0]
        assert fake.cdn[path][0].startswith(b"\x89PNG")
        # A thread for follow-ups, opened from the result message.
        assert original_id in fake.threads
        assert await bot.engine.latest_job_in_thread("discord", original_id) == job


async def test_bad_option_is_refused_ephemerally_before_any_deferral(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        payload = await fake.interact(fake.slash_payload({"prompt": "fox", "model": "dev", "steps": 60}))
        await fake.wait_for(lambda: payload["id"] in fake.acks)
        assert fake.acks[payload["id"]][0] == 4
        (text,) = fake.ephemeral_texts()
        assert "dev model" in text
        assert sandbox_of(bot).submits == 0


async def test_one_attachment_is_an_edit_and_two_are_personalization(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        cat, dog = png(color=(10, 200, 10)), png(80, 80, (10, 10, 200))
        att1 = fake.host_file(fake.channel_id, "cat.png", cat, "image/png")
        att2 = fake.host_file(fake.channel_id, "dog.png", dog, "image/png")

        one = await fake.interact(fake.slash_payload({"prompt": "make it blue"}, attachments=[att1]))
        await fake.wait_for(lambda: with_files(fake.messages.get(fake.originals.get(one["token"], ""), {})))
        two = await fake.interact(fake.slash_payload({"prompt": "tea party"}, attachments=[att1, att2]))
        await fake.wait_for(lambda: with_files(fake.messages.get(fake.originals.get(two["token"], ""), {})))
        await bot.runner.wait_idle()

        job1 = await bot.engine.job_for_post("discord", fake.originals[one["token"]])
        job2 = await bot.engine.job_for_post("discord", fake.originals[two["token"]])
        assert job1 is not None and job1.mode == "edit"
        assert job2 is not None and job2.mode == "personalization"
        sandbox_jobs = {j.prompt: j for j in sandbox_of(bot).received()}
        assert sandbox_jobs["make it blue"].references == [cat]
        assert sandbox_jobs["tea party"].references == [cat, dog]


async def test_text_file_as_image_is_refused_without_provider_call(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        honest = fake.host_file(fake.channel_id, "notes.txt", b"shopping list", "text/plain; charset=utf-8")
        payload = await fake.interact(fake.slash_payload({"prompt": "make it blue"}, attachments=[honest]))
        await fake.wait_for(lambda: payload["id"] in fake.acks)
        assert fake.acks[payload["id"]][0] == 4
        assert "notes.txt" in fake.ephemeral_texts()[0] and "not an image" in fake.ephemeral_texts()[0]
        assert fake.cdn_hits == []

        # Claims to be a PNG: only fetching it tells; the refusal still comes before the provider.
        liar = fake.host_file(fake.channel_id, "fake.png", b"not really a png", "image/png")
        payload = await fake.interact(fake.slash_payload({"prompt": "make it blue"}, attachments=[liar]))
        await fake.wait_for(lambda: len(fake.ephemeral_texts()) == 2)
        assert fake.acks[payload["id"]][0] == 5
        assert fake.messages[fake.originals[payload["token"]]].get("deleted")
        assert sandbox_of(bot).submits == 0
        status = await bot.engine.quota("discord", payload["member"]["user"]["id"], fake.guild_id)
        assert status.used == 0


async def test_quota_exceeded_is_told_ephemerally_with_limit_and_reset(tmp_path: Path) -> None:
    async with (
        FakeDiscord() as fake,
        discord_bot(tmp_path, fake, env={"HIDREAM_DAILY_IMAGE_QUOTA": 1}) as (bot, _),
    ):
        first = await fake.interact(fake.slash_payload({"prompt": "one fox"}))
        await fake.wait_for(lambda: with_files(fake.messages.get(fake.originals.get(first["token"], ""), {})))
        second = await fake.interact(fake.slash_payload({"prompt": "another fox"}))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert "used all 1 of your images" in texts[0] and "resets at 00:00 UTC" in texts[0]
        assert fake.messages[fake.originals[second["token"]]].get("deleted")
        assert sandbox_of(bot).submits == 1


async def test_usage_command_answers_ephemerally(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (_, _adapter):
        await fake.interact(fake.slash_payload({}, name="hidream-usage"))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert "25 of 25 images left" in texts[0]
        assert all(int(m["flags"]) & EPHEMERAL for m in fake.messages.values())

"""Sets and drafts on Discord: the real discord.py against the loopback FakeDiscord, the bot's provider
the Pixazo fake. `{a, b}` choices make one posted result per combination; at a quota of 2 a set of 3
sends nothing; a set of more than 4 asks its requester to confirm with a button, and is made only
then; a draft's Final button renders it on the full model with the same seed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.app import Bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, with_files
from tests.fakes.pixazo import PixazoFake


@asynccontextmanager
async def running(tmp_path: Path, **env: Any) -> AsyncIterator[tuple[FakeDiscord, Bot, PixazoFake]]:
    pixazo = PixazoFake(api_key="pixazo-key")
    settings = {"HIDREAM_PROVIDER": "pixazo", "PIXAZO_API_KEY": "pixazo-key", **env}
    async with pixazo.running(), FakeDiscord() as fake:
        settings["PIXAZO_BASE_URL"] = pixazo.url
        async with discord_bot(tmp_path, fake, env=settings) as (bot, _):
            bot.provider.poll_interval = 0.01
            yield fake, bot, pixazo


def results(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.visible() if with_files(m)]


def confirmations(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.messages.values()
        if any(c.startswith("hidream:confirmset:") for c in custom_ids(m)) and not m.get("deleted")
    ]


async def test_choices_post_one_result_per_combination(tmp_path: Path) -> None:
    async with running(tmp_path) as (fake, bot, pixazo):
        await fake.interact(fake.slash_payload({"prompt": "a {red, green, blue} fox", "seed": 3}))
        posted = await fake.wait_for(lambda: len(results(fake)) == 3 and results(fake))
        await bot.runner.wait_idle()
        assert sorted(s.json()["prompt"] for s in pixazo.submits) == [
            "a blue fox",
            "a green fox",
            "a red fox",
        ]
        jobs = [await bot.engine.job_for_post("discord", m["id"]) for m in posted]
        assert sorted(j.request.prompt for j in jobs if j is not None) == sorted(
            s.json()["prompt"] for s in pixazo.submits
        )
        assert all(j is not None and j.seed == 3 for j in jobs)


async def test_a_set_of_three_at_a_quota_of_two_sends_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, HIDREAM_DAILY_IMAGE_QUOTA=2) as (fake, bot, pixazo):
        payload = await fake.interact(fake.slash_payload({"prompt": "a {red, green, blue} fox"}))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert "That asks for 3 images but you have 2 of 2 left today" in texts[0], texts
        assert "resets at 00:00 UTC" in texts[0]
        await bot.runner.wait_idle()
        assert pixazo.submits == []
        assert results(fake) == []
        status = await bot.engine.quota("discord", payload["member"]["user"]["id"], fake.guild_id)
        assert (status.used, status.remaining) == (0, 2)


async def test_a_set_of_more_than_four_waits_for_its_requesters_button(tmp_path: Path) -> None:
    async with running(tmp_path) as (fake, bot, pixazo):
        await fake.interact(fake.slash_payload({"prompt": "a lighthouse --repeat 6 --seed 10"}))
        (asked,) = await fake.wait_for(lambda: confirmations(fake))
        assert "This makes 6 images for about $0.06" in asked["content"]
        assert pixazo.submits == [] and results(fake) == []
        (button,) = custom_ids(asked)

        # Someone else's press makes nothing.
        other = await fake.interact(fake.click_payload(asked, button, user_id="1500000000000000077"))
        await fake.wait_for(lambda: other["id"] in fake.acks)
        await fake.wait_for(lambda: any("Only the person who asked" in t for t in fake.ephemeral_texts()))
        assert pixazo.submits == []

        await fake.interact(fake.click_payload(asked, button))
        await fake.wait_for(lambda: len(results(fake)) == 6)
        await bot.runner.wait_idle()
        assert sorted(s.json()["seed"] for s in pixazo.submits) == list(range(10, 16))

        # A second press makes nothing more.
        again = await fake.interact(fake.click_payload(asked, button))
        await fake.wait_for(lambda: again["id"] in fake.acks)
        await fake.wait_for(lambda: any("no longer waiting" in t for t in fake.ephemeral_texts()))
        await bot.runner.wait_idle()
        assert len(pixazo.submits) == 6


async def test_a_drafts_final_button_renders_it_on_the_full_model_with_the_same_seed(tmp_path: Path) -> None:
    async with running(tmp_path) as (fake, bot, pixazo):
        payload = await fake.interact(fake.slash_payload({"prompt": "a red fox in snow --draft --ar 16:9"}))
        draft_msg = await fake.wait_for(
            lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
        )
        await bot.runner.wait_idle()
        draft = await bot.engine.job_for_post("discord", draft_msg["id"])
        assert draft is not None and draft.tier == "dev"
        assert pixazo.submits[-1].path == "/hidream-o1-image-dev/v1/hidream-o1-image-dev-request"
        assert custom_ids(draft_msg)[0] == f"hidream:final:{draft.id}"

        await fake.interact(fake.click_payload(draft_msg, f"hidream:final:{draft.id}"))
        final_msg = await fake.wait_for(lambda: len(results(fake)) == 2 and results(fake)[-1])
        await bot.runner.wait_idle()
        final = await bot.engine.job_for_post("discord", final_msg["id"])
        assert final is not None and final.tier == "full" and final.parent_job_id == draft.id
        assert final.channel and final.channel == str(draft_msg["channel_id"])  # counted where pressed
        sent = pixazo.submits[-1]
        assert sent.path == "/hidream-o1-image/v1/hidream-o1-image-request"
        assert sent.json()["seed"] == draft.seed == final.seed
        assert sent.json()["image_size"] == pixazo.submits[0].json()["image_size"]
        assert not any(c.startswith("hidream:final:") for c in custom_ids(final_msg))

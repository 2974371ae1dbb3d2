"""Remix on Discord against the fake and the sandbox: the button answers with a modal (a label holding
a paragraph text input filled with the prompt and its flags, and one holding a "keep the image"
checkbox, ticked) whose custom id names the job; the form sent back makes the next version of the
result's thread, with the result's image as the one reference when kept and none when not. A bad flag
is refused before anything is deferred or spent; another server's job is not found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.words import NOT_FOUND
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot
from tests.support.discord import CHANNEL_B, new_result_in, slash_result, two_guilds
from tests.support.harness import sandbox_of
from tests.support.toolbox import rgb

ADA = "1500000000000000001"
OTHER = "1500000000000000009"


def form_fields(modal: dict[str, Any]) -> dict[str, Any]:
    """Each labelled component of a modal by custom id: a text input's value, a checkbox's default."""
    found = {}
    for label in modal["components"]:
        assert label["type"] == 18, label
        inner = label["component"]
        found[inner["custom_id"]] = inner.get("value", inner.get("default"))
    return found


async def test_the_remix_button_opens_a_filled_in_form_and_remixes_in_the_thread(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, source = await slash_result(
            fake, bot, "a lighthouse on a cliff --ar 16:9 --seed 5 --steps 20"
        )
        original = (await bot.engine.result_images(source))[0].data
        thread = await bot.engine.versions.thread_of("discord", source.id)

        click = await fake.interact(fake.click_payload(result, f"hidream:remix:{source.id}"))
        await fake.wait_for(lambda: click["id"] in fake.acks)
        assert fake.acks[click["id"]][0] == 9  # answered with the form at once
        modal = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
        assert modal["custom_id"] == f"hidream:remixjob:{source.id}" and modal["title"] == "Remix"
        fields = form_fields(modal)
        assert fields == {
            "instruction": "a lighthouse on a cliff --ar 16:9 --seed 5 --steps 20",
            "keep": True,
        }
        [text] = [c["component"] for c in modal["components"] if c["component"]["type"] == 4]
        assert text["style"] == 2  # a paragraph

        async def send(text: str, keep: bool) -> tuple[Any, Any]:
            before = set(fake.messages)
            submit = fake.labelled_modal_payload(modal["custom_id"], {"instruction": text, "keep": keep})
            await fake.interact(submit)
            _, job = await new_result_in(fake, bot, before)
            assert fake.acks[submit["id"]][0] == 5
            assert job.parent_job_id == source.id
            assert await bot.engine.versions.thread_of("discord", job.id) == thread
            return sandbox_of(bot).received()[-1], job

        # Kept: an edit of the result's image with the changed prompt and flags, in its shape.
        sent, kept = await send("a lighthouse at night --ar 16:9 --seed 8 --steps 12", True)
        assert (sent.prompt, sent.seed, sent.references) == ("a lighthouse at night", 8, [original])
        assert kept.mode == "edit" and kept.request.steps == 12
        assert rgb((await bot.engine.result_images(kept))[0].data).size == (1360, 768)

        # Not kept: a new image from the text alone, still the next version in the same thread.
        sent, fresh = await send("a lighthouse at dawn --seed 9", False)
        assert (sent.prompt, sent.seed, sent.references) == ("a lighthouse at dawn", 9, [])
        assert fresh.mode != "edit" and (sent.width, sent.height) == (1024, 1024)

        assert thread is not None
        live = await bot.engine.versions.live("discord", thread)
        assert [v.job.id for v in live] == [source.id, kept.id, fresh.id]


async def test_a_bad_flag_or_another_servers_job_is_refused_with_nothing_spent(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        two_guilds(fake)
        async with discord_bot(tmp_path, fake) as (bot, _):
            _, source = await slash_result(fake, bot, "a red barn")
            submits = sandbox_of(bot).submits
            used = (await bot.engine.quota("discord", ADA, fake.guild_id)).used
            custom_id = f"hidream:remixjob:{source.id}"

            bad = fake.labelled_modal_payload(
                custom_id, {"instruction": "a red barn --seed lots", "keep": True}
            )
            await fake.interact(bad)
            told = await fake.wait_for(lambda: fake.ephemeral_texts())
            assert fake.acks[bad["id"]][0] == 4  # refused at once, nothing deferred
            assert "`--seed lots` is not a whole number" in told[-1]

            before = len(fake.ephemeral_texts())
            theirs = fake.labelled_modal_payload(
                custom_id, {"instruction": "a blue barn", "keep": True}, user_id=OTHER, channel_id=CHANNEL_B
            )
            await fake.interact(theirs)
            assert await fake.wait_for(lambda: fake.ephemeral_texts()[before:]) == [NOT_FOUND]

            await bot.runner.wait_idle()
            assert sandbox_of(bot).submits == submits
            assert (await bot.engine.quota("discord", ADA, fake.guild_id)).used == used
            assert (await bot.engine.quota("discord", OTHER, fake.guild_of(CHANNEL_B))).used == 0


async def test_the_remix_button_and_form_work_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake) as (bot, _):
            result, source = await slash_result(fake, bot, "a paper boat --seed 3")
        # Another process: the button and the form are answered from their custom ids and the store.
        async with discord_bot(tmp_path, fake) as (bot, _):
            click = await fake.interact(fake.click_payload(result, f"hidream:remix:{source.id}"))
            await fake.wait_for(lambda: click["id"] in fake.acks)
            modal = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
            assert form_fields(modal)["instruction"] == "a paper boat --seed 3"
            before = set(fake.messages)
            submit = {"instruction": "a paper boat on a pond --seed 3", "keep": True}
            await fake.interact(fake.labelled_modal_payload(modal["custom_id"], submit))
            _, job = await new_result_in(fake, bot, before)
            assert job.parent_job_id == source.id and job.request.prompt == "a paper boat on a pond"
            assert job.reference_media == source.result_media[:1]

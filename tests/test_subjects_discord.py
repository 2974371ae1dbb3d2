"""Saved subjects on Discord end to end: the real discord.py against FakeDiscord, the engine and the
sandbox provider. `/hidream-subject save` from attachments, use by the `subject` option and by
`@name` (the provider receives the subject's images as references: personalization for two), the
"Save as subject" button and its modal, list/show/delete, and what is refused: another server's
subjects, duplicates, bad names, a delete by someone who neither saved it nor manages the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, png, result_of, told, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.support.harness import sandbox_of

GUILD_B, CHANNEL_B = "1300000000000000201", "1300000000000000210"
ADA, BOB = "1500000000000000001", "1500000000000000002"


def subject_payload(
    fake: FakeDiscord,
    sub: str,
    options: dict[str, Any],
    *,
    attachments: list[dict[str, Any]] = (),  # type: ignore[assignment]
    user_id: str = ADA,
    permissions: int = MEMBER_PERMS,
) -> dict[str, Any]:
    payload = fake.slash_payload(
        options, attachments=attachments, name="hidream-subject", user_id=user_id, permissions=permissions
    )
    payload["data"]["options"] = [{"name": sub, "type": 1, "options": payload["data"]["options"]}]
    return payload


async def test_discord_subject_saved_from_attachments_is_used_by_option_and_by_name(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        fake.add_guild(GUILD_B, CHANNEL_B)
        names = {c["name"] for c in fake.commands["global"]}
        assert "hidream-subject" in names
        cat, dog = png(color=(10, 200, 10)), png(80, 80, (10, 10, 200))
        atts = [
            fake.host_file(fake.channel_id, n, d, "image/png") for n, d in (("c.png", cat), ("d.png", dog))
        ]

        save = subject_payload(fake, "save", {"name": "Mascot"}, attachments=atts)
        await told(fake, save, "Saved subject `Mascot` (2 image(s))")
        assert sandbox_of(bot).submits == 0
        assert (await bot.engine.quota("discord", ADA, fake.guild_id)).used == 0

        by_option = await result_of(
            fake, bot, fake.slash_payload({"prompt": "tea party", "subject": "mascot"})
        )
        by_name = await result_of(fake, bot, fake.slash_payload({"prompt": "@mascot on a boat"}))
        for message in (by_option, by_name):
            job = await bot.engine.job_for_post("discord", message["id"])
            assert job is not None and job.mode == "personalization"
        received = {j.prompt: j for j in sandbox_of(bot).received()}
        assert received["tea party"].references == [cat, dog]
        assert received["@mascot on a boat"].references == [cat, dog]

        # Server B sees none of server A's subjects: `@mascot` there is plain text, the option a refusal.
        in_b = await result_of(
            fake, bot, fake.slash_payload({"prompt": "@mascot alone"}, channel_id=CHANNEL_B)
        )
        job_b = await bot.engine.job_for_post("discord", in_b["id"])
        assert job_b is not None and job_b.mode == "text-to-image" and job_b.workspace_id == GUILD_B
        refused = fake.slash_payload({"prompt": "party", "subject": "mascot"}, channel_id=CHANNEL_B)
        await told(fake, refused, "There is no subject named `mascot` here")
        listing = subject_payload(fake, "list", {})
        listing.update(channel_id=CHANNEL_B, guild_id=GUILD_B)
        await told(fake, listing, "No subjects are saved here yet.")
        assert sandbox_of(bot).submits == 3


async def test_discord_subject_refusals_show_delete_and_the_save_button(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        owl = png(color=(120, 60, 200))
        att = fake.host_file(fake.channel_id, "owl.png", owl, "image/png")
        await told(fake, subject_payload(fake, "save", {"name": "owl"}, attachments=[att]), "Saved subject")
        again = fake.host_file(fake.channel_id, "owl2.png", owl, "image/png")
        dup = subject_payload(fake, "save", {"name": "OWL"}, attachments=[again], user_id=BOB)
        await told(fake, dup, "A subject named `owl` already exists here")
        bad = subject_payload(fake, "save", {"name": "my owl!"}, attachments=[again])
        await told(fake, bad, "`my owl!` is not a subject name")

        # A real user mention is not a subject, even when a subject has the same digits as its name.
        await told(fake, subject_payload(fake, "save", {"name": BOB}, attachments=[again]), "Saved subject")
        mention = await result_of(fake, bot, fake.slash_payload({"prompt": f"<@{BOB}> with a hat"}))
        job = await bot.engine.job_for_post("discord", mention["id"])
        assert job is not None and job.mode == "text-to-image"

        # Show posts the images in the channel.
        show = subject_payload(fake, "show", {"name": "owl"})
        await fake.interact(show)
        shown = await fake.wait_for(
            lambda: with_files(m := fake.messages.get(fake.originals.get(show["token"], ""), {})) and m
        )
        path = shown["attachments"][0]["url"].split("/cdn/")[1].split("?")[0]
        assert fake.cdn[path][0] == owl

        # The button under a result asks for a name in a modal, then saves that result.
        result = await result_of(fake, bot, fake.slash_payload({"prompt": "a lighthouse", "seed": 4}))
        made = await bot.engine.job_for_post("discord", result["id"])
        assert made is not None
        click = await fake.interact(fake.click_payload(result, f"hidream:subject:{made.id}"))
        await fake.wait_for(lambda: click["id"] in fake.acks)
        assert fake.acks[click["id"]][0] == 9
        modal = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
        assert modal["custom_id"] == f"hidream:subjectname:{made.id}"
        await told(
            fake, fake.modal_payload(modal["custom_id"], "tower"), "Saved subject `tower` (1 image(s))"
        )
        edit = await result_of(fake, bot, fake.slash_payload({"prompt": "@tower at night"}))
        edited = await bot.engine.job_for_post("discord", edit["id"])
        assert edited is not None and edited.mode == "edit"
        assert edited.reference_media == made.result_media

        # Delete: not by someone else; by a server manager, and by its creator.
        await told(
            fake,
            subject_payload(fake, "delete", {"name": "owl"}, user_id=BOB),
            "Only the person who saved `owl`",
        )
        manager = subject_payload(
            fake, "delete", {"name": "owl"}, user_id=BOB, permissions=MEMBER_PERMS | MANAGE_GUILD
        )
        await told(fake, manager, "Deleted subject `owl`.")
        await told(fake, subject_payload(fake, "delete", {"name": "tower"}), "Deleted subject `tower`.")
        await told(fake, subject_payload(fake, "list", {}), f"`{BOB}`: 1 image(s)")

"""Discord follow-ups against the fake: the context menu and its modal, replies with a mention,
messages in a result's thread, and the buttons under a result (also after a restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.words import LIMITS_REFUSED
from tests.fakes.discord import EPHEMERAL, FakeDiscord
from tests.fakes.discord_harness import discord_bot, png
from tests.fakes.discord_payloads import MANAGE_GUILD, MANAGE_MESSAGES, MEMBER_PERMS
from tests.support.discord import new_result_in, slash_result
from tests.support.harness import sandbox_of


async def test_context_menu_opens_a_modal_and_edits_that_image(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        photo = png(color=(250, 200, 0))
        att = fake.host_file(fake.channel_id, "sunset.png", photo, "image/png")
        bob = fake.user_message_payload("look", user_id="1500000000000000002", attachments=[att])
        await fake.post_user_message(bob)

        menu = await fake.interact(fake.context_menu_payload(bob))
        await fake.wait_for(lambda: menu["id"] in fake.acks)
        assert fake.acks[menu["id"]][0] == 9
        modal = fake.find("POST", f"/interactions/{menu['id']}/")[0].body["data"]
        assert modal["custom_id"] == f"hidream:ctx:{fake.channel_id}:{bob['id']}"

        before = set(fake.messages)
        submit = await fake.interact(fake.modal_payload(modal["custom_id"], "make the sky purple --seed 3"))
        _, job = await new_result_in(fake, bot, before)
        assert fake.acks[submit["id"]][0] == 5
        assert job.mode == "edit" and job.seed == 3 and job.request.prompt == "make the sky purple"
        assert fake.find("GET", f"/channels/{fake.channel_id}/messages/{bob['id']}")  # fresh attachment links
        (sandbox_job,) = [j for j in sandbox_of(bot).received() if j.prompt == "make the sky purple"]
        assert sandbox_job.references == [photo]


async def test_context_menu_on_a_message_without_image_is_refused(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        plain = await fake.post_user_message(fake.user_message_payload("just words"))
        menu = await fake.interact(fake.context_menu_payload(plain))
        await fake.wait_for(lambda: menu["id"] in fake.acks)
        assert fake.acks[menu["id"]][0] == 4 and "no image" in fake.ephemeral_texts()[0]
        assert sandbox_of(bot).submits == 0


async def test_reply_with_mention_edits_the_replied_image(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        photo = png(color=(0, 120, 250))
        att = fake.host_file(fake.channel_id, "lake.png", photo, "image/png")
        original = await fake.post_user_message(fake.user_message_payload("my lake", attachments=[att]))
        before = set(fake.messages)
        ask = fake.user_message_payload(f"<@{fake.bot_id}> make it night time --seed 11", reply_to=original)
        await fake.post_user_message(ask)

        result, job = await new_result_in(fake, bot, before | {ask["id"]})
        assert (
            result["message_reference"]["message_id"] == ask["id"]
        )  # the bot's reply, edited into the result
        assert job.mode == "edit" and job.seed == 11
        (sandbox_job,) = [j for j in sandbox_of(bot).received() if j.prompt == "make it night time"]
        assert sandbox_job.references == [photo]


async def test_reply_to_a_result_edits_the_image_the_bot_holds(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, first = await slash_result(fake, bot, "a lighthouse")
        before = set(fake.messages)
        ask = fake.user_message_payload(f"<@{fake.bot_id}> add fog", reply_to=result)
        await fake.post_user_message(ask)
        _, job = await new_result_in(fake, bot, before | {ask["id"]})
        assert job.parent_job_id == first.id and job.reference_media == first.result_media


async def test_requester_follow_up_in_the_result_thread_edits_the_latest_image(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, first = await slash_result(fake, bot, "an oak tree")
        thread_id = result["id"]
        assert thread_id in fake.threads

        # Someone else chatting in the thread without a mention is left alone.
        await fake.post_user_message(
            fake.user_message_payload("pretty!", channel_id=thread_id, user_id="1500000000000000002")
        )
        before = set(fake.messages)
        ask = fake.user_message_payload("now add a small owl", channel_id=thread_id)
        await fake.post_user_message(ask)
        reply, second = await new_result_in(fake, bot, before | {ask["id"]})
        assert reply["channel_id"] == thread_id
        assert second.parent_job_id == first.id and second.reference_media == first.result_media[:1]
        assert second.user_id == first.user_id

        # The next message edits the newest image of the thread, not the first one.
        before = set(fake.messages)
        again = fake.user_message_payload("and make it snow", channel_id=thread_id)
        await fake.post_user_message(again)
        _, third = await new_result_in(fake, bot, before | {again["id"]})
        assert third.parent_job_id == second.id
        assert sandbox_of(bot).submits == 3


async def test_reroll_pressed_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake) as (bot, _):
            result, first = await slash_result(fake, bot, "a glass city")
        # A new process: new adapter, new engine, the same database.
        async with discord_bot(tmp_path, fake) as (bot, _):
            before = set(fake.messages)
            click = await fake.interact(fake.click_payload(result, f"hidream:reroll:{first.id}"))
            _, job = await new_result_in(fake, bot, before)
            assert fake.acks[click["id"]][0] == 5
            assert job.parent_job_id == first.id and job.request.prompt == "a glass city"
            assert job.seed != first.seed


async def test_edit_button_opens_a_modal_and_edits_the_result(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, first = await slash_result(fake, bot, "a red car")
        click = await fake.interact(fake.click_payload(result, f"hidream:edit:{first.id}"))
        await fake.wait_for(lambda: click["id"] in fake.acks)
        modal = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
        assert fake.acks[click["id"]][0] == 9 and modal["custom_id"] == f"hidream:editjob:{first.id}"
        before = set(fake.messages)
        await fake.interact(fake.modal_payload(modal["custom_id"], "make it green"))
        _, job = await new_result_in(fake, bot, before)
        assert job.parent_job_id == first.id and job.mode == "edit"


async def test_delete_button_only_for_requester_or_message_managers(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, job = await slash_result(fake, bot, "a blue bird")
        stranger = await fake.interact(
            fake.click_payload(result, f"hidream:delete:{job.id}", user_id="1500000000000000002")
        )
        text = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert "Only the person who asked" in text[0] and fake.acks[stranger["id"]][0] == 6
        assert not fake.messages[result["id"]].get("deleted")

        moderator = fake.click_payload(
            result,
            f"hidream:delete:{job.id}",
            user_id="1500000000000000003",
            permissions=MEMBER_PERMS | MANAGE_MESSAGES,
        )
        await fake.interact(moderator)
        await fake.wait_for(lambda: fake.messages[result["id"]].get("deleted"))
        assert await fake.wait_for(lambda: fake.find("DELETE", f"/messages/{result['id']}"))
        assert all(not int(m["flags"]) & EPHEMERAL for m in fake.visible())


async def test_without_the_message_content_intent_mentions_still_work(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.allow_message_content = False
        async with discord_bot(tmp_path, fake) as (bot, adapter):
            assert not adapter.message_content
            assert not fake.intents & (1 << 15)
            before = set(fake.messages)
            ask = fake.user_message_payload(f"<@{fake.bot_id}> a paper boat --seed 4")
            await fake.post_user_message(ask)
            _, job = await new_result_in(fake, bot, before | {ask["id"]})
            assert job.request.prompt == "a paper boat" and job.mode == "text-to-image"


async def test_admin_commands_need_manage_server_and_change_limits(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        target = "1500000000000000002"

        def admin(sub: str, options: list[dict[str, Any]], permissions: int) -> dict[str, Any]:
            payload = fake.slash_payload({}, name="hidream-admin", permissions=permissions)
            payload["data"]["options"] = [{"name": sub, "type": 1, "options": options}]
            payload["data"]["resolved"] = {"users": {target: fake.user(target, "bob")}}
            return payload

        member = [{"name": "member", "type": 6, "value": target}]
        await fake.interact(
            admin("user-limit", [*member, {"name": "images", "type": 4, "value": 3}], MEMBER_PERMS)
        )
        refused = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if t == LIMITS_REFUSED])
        assert refused
        assert (await bot.engine.quota("discord", target, fake.guild_id)).limit == 25

        await fake.interact(
            admin(
                "user-limit",
                [*member, {"name": "images", "type": 4, "value": 3}],
                MEMBER_PERMS | MANAGE_GUILD,
            )
        )
        await fake.wait_for(
            lambda: [t for t in fake.ephemeral_texts() if f"<@{target}> now has 3 images a day" in t]
        )
        assert (await bot.engine.quota("discord", target, fake.guild_id)).limit == 3

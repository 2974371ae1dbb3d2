"""Approvals on Discord against the loopback FakeDiscord: an admin marks a channel reviewed by a role;
a request there reaches its requester alone (ephemerally) and the reviewers' queue channel with
Approve and Reject buttons; after a restart a reviewer's Approve posts it once in the channel with
"approved by", a non-reviewer's press is refused, Reject asks the reason and tells the requester; the
audit export and the operators' page say so."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bot.app import Bot
from bot.usecases.region import editor_path
from storage import audit
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.support.admin_support import TOKEN
from tests.support.region import send_form

QUEUE = "1300000000000000030"
ADMIN_ENV = {"HIDREAM_ADMIN_TOKEN": TOKEN}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ADMIN, REQUESTER, REVIEWER, STRANGER = (
    "1500000000000000009",
    "1500000000000000001",
    "1500000000000000042",
    "1500000000000000077",
)


async def mark_reviewed(fake: FakeDiscord, value: str) -> str:
    options = {"action": "review", "value": value}
    payload = fake.slash_payload(
        options, name="hidream-policy", user_id=ADMIN, permissions=MEMBER_PERMS | MANAGE_GUILD
    )
    await fake.interact(payload)
    texts: list[str] = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if "review" in t])
    return texts[-1]


async def request_in_reviewed_channel(fake: FakeDiscord, bot: Bot, prompt: str) -> tuple[dict[str, Any], str]:
    """The queue's message for a new request and its job id, once the requester has it privately."""
    payload = await fake.interact(fake.slash_payload({"prompt": prompt}, user_id=REQUESTER))
    queued = await fake.wait_for(
        lambda: next((m for m in fake.visible(QUEUE) if with_files(m) and prompt in m["content"]), None)
    )
    await bot.runner.wait_idle()
    answer = fake.messages[fake.originals[payload["token"]]]
    assert with_files(answer) and answer["flags"] & 64, answer  # the requester's own, ephemeral
    assert "only you see this" in answer["content"]
    assert not [m for m in fake.visible(fake.channel_id) if with_files(m)]  # nothing public
    approve, reject = custom_ids(queued)
    assert approve.startswith("hidream:approve:") and reject.startswith("hidream:reject:")
    assert approve.split(":")[3] == fake.guild_id  # the server rides along, for presses in DMs
    return queued, approve.split(":")[2]


def press(
    fake: FakeDiscord, message: dict[str, Any], custom_id: str, user_id: str, *, role: bool
) -> dict[str, Any]:
    payload = fake.click_payload(message, f"{custom_id}:{fake.guild_id}", user_id=user_id)
    if "member" in payload:  # a press in a server (none in a direct message)
        payload["member"]["roles"] = [fake.reviewer_role_id] if role else []
    return payload


def posted_in_channel(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.visible(fake.channel_id) if with_files(m)]


async def operators_page(bot: Bot) -> tuple[str, list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=bot.server_url, headers=BEARER) as http:
        page = await http.get("/admin")
        api = await http.get("/admin/api/approvals")
    assert page.status_code == 200 and api.status_code == 200
    return page.text, api.json()


async def test_approve_after_a_restart_posts_it_once_with_approved_by(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake, env=ADMIN_ENV) as (bot, _):
            said = await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
            assert "now reviewed by" in said and f"<#{QUEUE}>" in said
            queued, job_id = await request_in_reviewed_channel(fake, bot, "a red kite")
            pending = await bot.engine.approvals.pending()
            assert [(p.job_id, p.requester, p.prompt) for p in pending] == [
                (job_id, f"discord:{REQUESTER}", "a red kite")
            ]
            page, listed = await operators_page(bot)
            table = page.split('<table id="approvals">', 1)[1].split("</table>", 1)[0]
            assert "a red kite" in table and f"discord:{REQUESTER}" in table and fake.channel_id in table
            assert [(a["job"], a["tenant"]) for a in listed] == [(job_id, f"discord:{fake.guild_id}")]
        # A new process: the buttons still work, answered from the store.
        async with discord_bot(tmp_path, fake, env=ADMIN_ENV) as (bot, adapter):
            await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", STRANGER, role=False))
            await fake.wait_for(
                lambda: any("Only this channel's reviewers" in t for t in fake.ephemeral_texts())
            )
            assert posted_in_channel(fake) == []

            await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
            (public,) = await fake.wait_for(lambda: posted_in_channel(fake))
            assert f"approved by <@{REVIEWER}>" in public["content"] and "a red kite" in public["content"]
            await fake.wait_for(lambda: "approved by" in fake.messages[queued["id"]]["content"])
            assert custom_ids(fake.messages[queued["id"]]) == []  # the queue's buttons are gone

            again = await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
            await fake.wait_for(lambda: again["id"] in fake.acks)
            await fake.wait_for(lambda: any("already approved" in t for t in fake.ephemeral_texts()))
            assert len(posted_in_channel(fake)) == 1
            assert await bot.engine.approvals.pending() == []
            page, listed = await operators_page(bot)
            assert listed == [] and "no result waits for a reviewer" in page

            # An operator's take-down removes the approved post and the queue's message too.
            job = await bot.engine.job(job_id)
            assert job is not None and await adapter.withdraw(job) == 2
            assert posted_in_channel(fake) == [] and fake.visible(QUEUE) == []

            rows = [r async for r in audit.rows(bot.store, since=0, until=float("inf"))]
            assert [(r["job"], r["approved_by"]) for r in rows] == [(job_id, f"discord:{REVIEWER}")]


async def test_reject_after_a_restart_tells_the_requester_why(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake) as (bot, _):
            await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
            queued, job_id = await request_in_reviewed_channel(fake, bot, "a blue heron")
        async with discord_bot(tmp_path, fake) as (bot, _):
            click = await fake.interact(press(fake, queued, f"hidream:reject:{job_id}", REVIEWER, role=True))
            await fake.wait_for(lambda: click["id"] in fake.acks)
            assert fake.acks[click["id"]][0] == 9  # the reason's form
            form = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
            assert form["custom_id"] == f"hidream:rejectwhy:{job_id}:{fake.guild_id}"
            submit = fake.modal_payload(
                f"hidream:rejectwhy:{job_id}:{fake.guild_id}",
                "too dark for the brand",
                user_id=REVIEWER,
                field="reason",
            )
            submit["member"]["roles"] = [fake.reviewer_role_id]
            await fake.interact(submit)
            told = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if "was not approved" in t])
            assert (
                "a blue heron" in told[0]
                and "too dark for the brand" in told[0]
                and f"<@{REVIEWER}>" in told[0]
            )
            await bot.runner.wait_idle()
            assert posted_in_channel(fake) == []
            approval = await bot.engine.approvals.get(job_id, f"discord:{fake.guild_id}")
            assert approval is not None and (approval.state, approval.reason) == (
                "rejected",
                "too dark for the brand",
            )

            # Rejected once: an Approve pressed later posts nothing.
            late = await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
            await fake.wait_for(lambda: late["id"] in fake.acks)
            await fake.wait_for(lambda: any("already rejected" in t for t in fake.ephemeral_texts()))
            assert posted_in_channel(fake) == []


async def test_a_mention_reviewed_by_people_goes_to_direct_messages(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        said = await mark_reviewed(fake, f"<@{REVIEWER}> <@{STRANGER}>")
        assert "their direct messages" in said
        ask = fake.user_message_payload(f"<@{fake.bot_id}> a green owl", user_id=REQUESTER)
        await fake.post_user_message(ask)

        # Each reviewer's DM gets the image with the buttons; the requester's DM gets it alone.
        def queued() -> list[dict[str, Any]]:
            dms = [fake.dms.get(d, "") for d in (REVIEWER, STRANGER)]
            return [m for d in dms for m in fake.visible(d) if d and custom_ids(m)]

        queues = await fake.wait_for(lambda: len(queued()) == 2 and queued())
        await bot.runner.wait_idle()
        assert all(with_files(m) and "a green owl" in m["content"] for m in queues)
        (own,) = [m for m in fake.visible(fake.dms[REQUESTER]) if with_files(m)]
        assert "only you see this" in own["content"]
        assert posted_in_channel(fake) == []
        progress = [m for m in fake.visible(fake.channel_id) if m["author"]["id"] == fake.bot_id]
        assert len(progress) == 1 and "sent to this channel's reviewers" in progress[0]["content"]

        job_id = custom_ids(queues[0])[0].split(":")[2]
        in_dm = press(fake, queues[0], f"hidream:approve:{job_id}", REVIEWER, role=False)
        assert "guild_id" not in in_dm and in_dm["user"]["id"] == REVIEWER
        await fake.interact(in_dm)
        (public,) = await fake.wait_for(lambda: posted_in_channel(fake))
        assert f"approved by <@{REVIEWER}>" in public["content"]


async def test_an_approval_cut_off_before_its_post_is_posted_by_the_next_press(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake) as (bot, _):
            await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
            queued, job_id = await request_in_reviewed_channel(fake, bot, "a grey gull")
            # As a process stopped between a reviewer's decision and its post leaves it, long ago.
            cut = "UPDATE approvals SET state='approved', decided_by=?, decided_at=1, posting_at=1 WHERE job_id=?"
            assert await bot.store.write(cut, ADMIN, job_id) == 1
        async with discord_bot(tmp_path, fake) as (bot, _):
            await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
            (public,) = await fake.wait_for(lambda: posted_in_channel(fake))
            assert f"approved by <@{ADMIN}>" in public["content"]  # who decided, not who pressed again
            again = await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
            await fake.wait_for(lambda: again["id"] in fake.acks)
            await fake.wait_for(lambda: any("already approved" in t for t in fake.ephemeral_texts()))
            assert len(posted_in_channel(fake)) == 1


async def test_a_thread_of_a_reviewed_channel_is_reviewed_too(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        thread = fake.snowflake()  # a thread a member opened in the reviewed channel
        fake.threads[thread] = fake.thread_payload(thread, fake.channel_id, "talk")
        payload = await fake.interact(
            fake.slash_payload({"prompt": "a pale moth"}, user_id=REQUESTER, channel_id=thread)
        )
        queued = await fake.wait_for(
            lambda: next(
                (m for m in fake.visible(QUEUE) if with_files(m) and "a pale moth" in m["content"]), None
            )
        )
        await bot.runner.wait_idle()
        answer = fake.messages[fake.originals[payload["token"]]]
        assert with_files(answer) and answer["flags"] & 64 and "only you see this" in answer["content"]
        assert not [m for m in fake.visible() if with_files(m) and m["id"] != queued["id"]]  # nothing public


async def said_once(fake: FakeDiscord, words: str) -> str:
    found: list[str] = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if words in t])
    return found[-1]


async def policy_review(fake: FakeDiscord, value: str) -> str:
    """What an admin is told for `/hidream-policy review <value>` (the next private answer)."""
    before = len(fake.ephemeral_texts())
    payload = fake.slash_payload(
        {"action": "review", "value": value},
        name="hidream-policy",
        user_id=ADMIN,
        permissions=MEMBER_PERMS | MANAGE_GUILD,
    )
    await fake.interact(payload)
    await fake.wait_for(lambda: len(fake.ephemeral_texts()) > before)
    return fake.ephemeral_texts()[-1]


async def test_a_queue_or_reviewers_outside_the_server_are_refused(tmp_path: Path) -> None:
    other_guild, other_channel, outsider = "1300000000000000101", "1300000000000000110", "1500000000000000066"
    async with FakeDiscord() as fake:
        fake.add_guild(other_guild, other_channel)
        fake.outsiders.add(outsider)
        async with discord_bot(tmp_path, fake) as (bot, _):
            tenant = f"discord:{fake.guild_id}"
            said = await policy_review(fake, f"<@&{fake.reviewer_role_id}> to <#{other_channel}>")
            assert "must be a channel of this server" in said
            assert "someone you named is not here" in await policy_review(
                fake, f"<@{REVIEWER}> <@{outsider}>"
            )
            assert [c for c in fake.calls if c.path == f"/guilds/{fake.guild_id}/members/{outsider}"]
            # A role of no server of ours (or of another server) is not this server's either.
            assert "someone you named is not here" in await policy_review(
                fake, f"<@&{other_guild}> to <#{QUEUE}>"
            )
            assert await bot.engine.approvals.reviewed(tenant, fake.channel_id) is None
            # The server's own role and channel, and its own people, are taken.
            assert "now reviewed by" in await policy_review(
                fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>"
            )
            assert "now reviewed by" in await policy_review(fake, f"<@{REVIEWER}> <@{STRANGER}>")
            assert await bot.engine.approvals.reviewed(tenant, fake.channel_id) is not None


async def test_a_queue_that_cannot_be_reached_leaves_the_requester_their_image(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        fake.closed_channels.add(QUEUE)  # the bot's access to the queue was removed: 403 Missing Access
        payload = await fake.interact(fake.slash_payload({"prompt": "a lost gull"}, user_id=REQUESTER))
        told = await said_once(fake, "reviewers could not be reached")
        await bot.runner.wait_idle()
        assert "tell an admin" in told
        answer = fake.messages[fake.originals[payload["token"]]]
        assert with_files(answer) and answer["flags"] & 64 and not answer.get("deleted")
        assert not [t for t in fake.ephemeral_texts() if "could not be posted" in t]
        pending = await bot.engine.approvals.pending()
        assert len(pending) == 1
        made = await bot.engine.job(pending[0].job_id)
        assert made is not None and made.state.value == "delivered"  # kept, and counted: no refund
        assert posted_in_channel(fake) == [] and fake.visible(QUEUE) == []


async def test_a_take_down_clears_the_queue_and_ends_the_approval(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake, env=ADMIN_ENV) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        queued, job_id = await request_in_reviewed_channel(fake, bot, "a torn flag")
        async with httpx.AsyncClient(base_url=bot.server_url, headers=BEARER) as http:
            done = await http.post("/admin/moderation/delete", data={"job": job_id})
        assert done.status_code in (200, 303)
        assert fake.visible(QUEUE) == []  # the reviewers no longer have the image
        approval = await bot.engine.approvals.get(job_id, f"discord:{fake.guild_id}")
        assert approval is not None and approval.state == "withdrawn"
        assert await bot.engine.approvals.pending() == []
        await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
        assert "taken down by the operators" in await said_once(fake, "taken down")
        assert posted_in_channel(fake) == []


async def test_an_image_gone_is_never_approved(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        queued, job_id = await request_in_reviewed_channel(fake, bot, "a faded map")
        job = await bot.engine.job(job_id)
        assert (
            job is not None and await bot.store.delete_media(list(job.result_media)) == 1
        )  # as retention does
        await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
        assert "no longer held" in await said_once(fake, "no longer held")
        approval = await bot.engine.approvals.get(job_id, f"discord:{fake.guild_id}")
        assert approval is not None and approval.state == "pending"  # not "approved" with nothing posted
        assert posted_in_channel(fake) == []


async def test_a_queue_in_direct_messages_reaches_each_reviewer_once(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, adapter):
        await mark_reviewed(fake, f"<@{REVIEWER}> <@{STRANGER}>")
        closed = fake._dm_channel(STRANGER)["id"]
        fake.closed_channels.add(closed)  # the second reviewer's DMs refuse the bot for now
        await fake.interact(fake.slash_payload({"prompt": "a quiet pier"}, user_id=REQUESTER))
        await said_once(fake, "reviewers could not be reached")
        await bot.runner.wait_idle()
        first = [m for m in fake.visible(fake.dms[REVIEWER]) if custom_ids(m)]
        assert len(first) == 1 and fake.visible(closed) == []
        # Once their DMs open again, a second try reaches the one it missed, and only them.
        fake.closed_channels.discard(closed)
        (pending,) = await bot.engine.approvals.pending()
        job = await bot.engine.job(pending.job_id)
        assert job is not None
        await adapter.queue_for_review(job, await bot.engine.result_images(job))
        assert len([m for m in fake.visible(fake.dms[REVIEWER]) if custom_ids(m)]) == 1
        assert len([m for m in fake.visible(closed) if custom_ids(m) and with_files(m)]) == 1


async def test_a_mention_in_a_thread_the_bot_was_never_told_of_is_reviewed(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        thread = fake.snowflake()  # opened by a member: no THREAD_CREATE reached the bot
        fake.threads[thread] = fake.thread_payload(thread, fake.channel_id, "chat")
        ask = fake.user_message_payload(
            f"<@{fake.bot_id}> a dim lantern", user_id=REQUESTER, channel_id=thread
        )
        await fake.post_user_message(ask)
        await fake.wait_for(
            lambda: [m for m in fake.visible(QUEUE) if with_files(m) and "a dim lantern" in m["content"]]
        )
        await bot.runner.wait_idle()
        assert [c for c in fake.calls if c.method == "GET" and c.path == f"/channels/{thread}"]
        assert not [m for m in fake.visible(thread) if with_files(m)]  # nothing public in the thread


async def test_a_reviewer_cannot_approve_their_own_request_but_another_can(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake, env=ADMIN_ENV) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        queued, job_id = await request_in_reviewed_channel(fake, bot, "a grey heron")
        # The requester holds the reviewers' role too: their own press decides nothing.
        await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REQUESTER, role=True))
        await fake.wait_for(lambda: any("your own request" in t for t in fake.ephemeral_texts()))
        assert posted_in_channel(fake) == []
        (approval,) = await bot.engine.approvals.pending()
        assert approval.job_id == job_id

        await fake.interact(press(fake, queued, f"hidream:approve:{job_id}", REVIEWER, role=True))
        (public,) = await fake.wait_for(lambda: posted_in_channel(fake))
        assert f"approved by <@{REVIEWER}>" in public["content"]


async def test_a_region_edit_of_a_result_made_in_a_thread_of_a_reviewed_channel_is_reviewed(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await mark_reviewed(fake, f"<@&{fake.reviewer_role_id}> to <#{QUEUE}>")
        thread = fake.snowflake()  # a thread a member opened in the reviewed channel
        fake.threads[thread] = fake.thread_payload(thread, fake.channel_id, "talk")
        await fake.interact(
            fake.slash_payload({"prompt": "a pale moth"}, user_id=REQUESTER, channel_id=thread)
        )
        queued = await fake.wait_for(lambda: [m for m in fake.visible(QUEUE) if with_files(m)])
        await bot.runner.wait_idle()
        (_, job_id) = custom_ids(queued[0])[0].split(":")[1:3]
        source = await bot.engine.job(job_id)
        assert source is not None and (source.channel, source.home_channel) == (thread, fake.channel_id)

        signer = await bot.engine.link_signer()
        link = bot.server_url + editor_path(signer, source, 0, now=time.time())
        sent = await send_form(link, (100, 100, 400, 400), "a red spot")
        assert sent.status_code == 200
        await fake.wait_for(lambda: len([m for m in fake.visible(QUEUE) if with_files(m)]) == 2)
        await bot.runner.wait_idle()
        (edit,) = [j for j in await bot.engine.approvals.pending() if j.job_id != job_id]
        region = await bot.engine.job(edit.job_id)
        assert (
            region is not None
            and region.request.region is not None
            and region.home_channel == fake.channel_id
        )
        # Nothing public: the requester has it privately (a direct message now), the reviewers in the queue.
        assert [m for m in fake.visible(thread) + fake.visible(fake.channel_id) if with_files(m)] == []

"""The moderation view of the operators' page, through the real Discord adapter against FakeDiscord:
images made by people in two servers shown newest first with their requester and prompt (escaped),
filtered by tenant, channel, person and state; an operator's Delete removes the chat post (the fake records it)
and the stored bytes (the media row and file gone, the signed link 404); Block refuses that person's
next request in that server only; every action logged at INFO and listed on the page."""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import words
from bot.model.jobs import Job, JobState
from storage import reports
from storage.media import MediaFiles
from storage.posts import NewMedia
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, png, with_files
from tests.fakes.slack import FakeSlack
from tests.support.admin_support import TOKEN, stored
from tests.support.admin_support import job as paper_job
from tests.support.discord import CHANNEL_B, GUILD_B, slash_result
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, command_to_result, file_messages, job_id_of, running
from tests.support.store_backends import OpenStore

FOX_USER, HERON_USER = "1500000000000000011", "1500000000000000022"


def jobs_shown(page: str) -> list[str]:
    return re.findall(r'<div class="item" id="job-[^"]+" data-job="([^"]+)"', page)


def thumbs(page: str, job_id: str) -> list[str]:
    item = page.split(f'data-job="{job_id}"', 1)[1].split('<div class="item"', 1)[0]
    return [html.unescape(src) for src in re.findall(r'<img src="([^"]+)"', item)]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def made(
    fake: FakeDiscord, bot: Any, prompt: str, user: str, channel: str | None
) -> tuple[dict[str, Any], Job]:
    payload = await fake.interact(fake.slash_payload({"prompt": prompt}, user_id=user, channel_id=channel))
    result = await fake.wait_for(
        lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
    )
    await bot.runner.wait_idle()
    job = await bot.engine.job_for_post("discord", result["id"])
    assert job is not None
    return result, job


async def sign_in(http: httpx.AsyncClient) -> None:
    answer = await http.post("/admin/login", data={"token": TOKEN})
    assert answer.status_code == 303 and "hidream_admin" in http.cookies


async def test_moderation_view_deletes_and_blocks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs.moderation")
    fake = FakeDiscord()
    fake.add_guild(GUILD_B, CHANNEL_B)
    async with fake, discord_bot(tmp_path, fake, env={"HIDREAM_ADMIN_TOKEN": TOKEN}) as (bot, _):
        fox_post, fox = await made(fake, bot, "a red fox in snow", FOX_USER, None)
        heron_post, heron = await made(fake, bot, "a <b>heron</b> & reeds", HERON_USER, CHANNEL_B)
        base = bot.server_url

        # Not signed in: the view sends the browser to the sign-in form, and its actions are refused.
        async with httpx.AsyncClient(base_url=base) as anonymous:
            assert (await anonymous.get("/admin/moderation")).headers["Location"] == "/admin/login"
            refused = await anonymous.post("/admin/moderation/delete", data={"job": fox.id})
            assert refused.status_code == 303 and refused.headers["Location"] == "/admin/login"
        assert not fake.messages[fox_post["id"]].get("deleted")

        async with httpx.AsyncClient(base_url=base) as http:
            await sign_in(http)
            page = (await http.get("/admin/moderation")).text
            # Newest first, each with who made it and the prompt, escaped.
            assert jobs_shown(page) == [heron.id, fox.id]
            assert f"discord:{HERON_USER}" in page and f"discord:{FOX_USER}" in page
            assert f"discord:{GUILD_B}" in page and f"discord:{fake.guild_id}" in page
            assert "a &lt;b&gt;heron&lt;/b&gt; &amp; reeds" in page and "<b>heron</b>" not in page
            assert "a red fox in snow" in page
            # The thumbnails are signed media links that serve the stored image.
            fox_thumbs = thumbs(page, fox.id)
            assert len(fox_thumbs) == len(fox.result_media) == 1
            assert fox_thumbs[0].startswith(f"/media/{fox.result_media[0]}?exp=")
            image = await http.get(fox_thumbs[0])
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert (await http.get(fox_thumbs[0].replace("sig=", "sig=0"))).status_code == 403

            # Filters: tenant, person, state (plain query parameters).
            by_tenant = (await http.get("/admin/moderation", params={"tenant": f"discord:{GUILD_B}"})).text
            assert jobs_shown(by_tenant) == [heron.id]
            by_channel = (await http.get("/admin/moderation", params={"channel": CHANNEL_B})).text
            assert heron.channel == CHANNEL_B and jobs_shown(by_channel) == [heron.id]
            by_person = (await http.get("/admin/moderation", params={"person": f"discord:{FOX_USER}"})).text
            assert jobs_shown(by_person) == [fox.id]
            assert jobs_shown((await http.get("/admin/moderation", params={"person": FOX_USER})).text) == [
                fox.id
            ]
            delivered = (await http.get("/admin/moderation", params={"state": "delivered"})).text
            assert jobs_shown(delivered) == [heron.id, fox.id]
            failed = (await http.get("/admin/moderation", params={"state": "failed"})).text
            assert jobs_shown(failed) == [] and "no images match" in failed

            # A form without the session's CSRF token changes nothing.
            forged = await http.post("/admin/moderation/delete", data={"job": fox.id, "csrf": "0" * 64})
            assert forged.status_code == 403
            assert not fake.messages[fox_post["id"]].get("deleted")
            assert await bot.store.media(fox.result_media[0]) is not None

            # Delete: the post in the chat and the stored bytes.
            media_id = fox.result_media[0]
            files = bot.store.media_bytes
            path = files.path_of(media_id) if isinstance(files, MediaFiles) else None
            assert path is not None and path.exists()
            deleted = await http.post("/admin/moderation/delete", data={"job": fox.id, "csrf": csrf_of(page)})
            assert deleted.status_code == 303
            assert deleted.headers["Location"] == "/admin/moderation?done=deleted"
            assert fake.messages[fox_post["id"]].get("deleted")
            assert not fake.messages[heron_post["id"]].get("deleted")
            assert await bot.store.media(media_id) is None and not path.exists()
            assert (await http.get(fox_thumbs[0])).status_code == 404
            assert await bot.engine.job_for_post("discord", fox_post["id"]) is None
            after = (await http.get("/admin/moderation?done=deleted")).text
            assert "its posts in the chat and its stored bytes" in after
            assert thumbs(after, fox.id) == [] and len(thumbs(after, heron.id)) == 1

            # Block the heron's maker in the second server.
            blocked = await http.post(
                "/admin/moderation/block", data={"job": heron.id, "where": "tenant", "csrf": csrf_of(page)}
            )
            assert blocked.headers["Location"] == "/admin/moderation?done=blocked"
            actions = (await http.get("/admin/moderation")).text.split('id="moderation-actions"', 1)[1]
            assert actions.count("<tr>") == 3  # the head and two actions
            assert "block" in actions and "delete" in actions and heron.id in actions and fox.id in actions

        submits = sandbox_of(bot).submits
        ephemeral_before = len(fake.ephemeral_texts())
        await fake.interact(
            fake.slash_payload({"prompt": "another heron"}, user_id=HERON_USER, channel_id=CHANNEL_B)
        )
        texts = await fake.wait_for(lambda: fake.ephemeral_texts()[ephemeral_before:])
        assert texts[0] == words.BLOCKED_BY_OPERATOR
        assert sandbox_of(bot).submits == submits
        # Blocked in that server only: the same person may still make images in the other one.
        await made(fake, bot, "a heron elsewhere", HERON_USER, None)
        assert sandbox_of(bot).submits == submits + 1

    lines = [r.getMessage() for r in caplog.records if r.name == "bot.jobs.moderation"]
    assert any(
        "operator action delete" in line and fox.id in line and f"discord:{fake.guild_id}" in line
        for line in lines
    )
    assert any(
        "operator action block" in line and heron.id in line and f"discord:{GUILD_B}" in line
        for line in lines
    )
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "bot.jobs.moderation")


async def test_block_everywhere_and_the_api(tmp_path: Path) -> None:
    fake = FakeDiscord()
    fake.add_guild(GUILD_B, CHANNEL_B)
    async with fake, discord_bot(tmp_path, fake, env={"HIDREAM_ADMIN_TOKEN": TOKEN}) as (bot, _):
        _, fox = await slash_result(fake, bot, "a red fox")
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=bot.server_url, headers=bearer) as http:
            listed = (await http.get("/admin/api/moderation")).json()
            assert [j["id"] for j in listed] == [fox.id] and listed[0]["prompt"] == "a red fox"
            # A bearer of the token sends no cookie, so its form needs no CSRF token.
            answer = await http.post("/admin/moderation/block", data={"job": fox.id, "where": "everywhere"})
            assert answer.headers["Location"] == "/admin/moderation?done=blocked-everywhere"
            missing = await http.post("/admin/moderation/delete", data={"job": "no-such-job"})
            assert missing.headers["Location"] == "/admin/moderation?done=not-found"
            kept = (await http.get("/admin/api/moderation-actions")).json()
            assert [(a["action"], a["tenant"], a["job_id"]) for a in kept] == [
                ("block everywhere", "*", fox.id)
            ]
        submits = sandbox_of(bot).submits
        before = len(fake.ephemeral_texts())
        await fake.interact(fake.slash_payload({"prompt": "a fox elsewhere"}, channel_id=CHANNEL_B))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts()[before:])
        assert texts[0] == words.BLOCKED_BY_OPERATOR
        assert sandbox_of(bot).submits == submits


async def test_the_store_side_on_both_backends(open_store: OpenStore) -> None:
    """What the view reads and what its actions write, on SQLite and on PostgreSQL alike."""
    async with open_store(default_limit=25, default_ceiling=None) as store:
        made = []
        for user, tenant, prompt in (
            ("u1", "w1", "a fox"),
            ("u2", "w2", "a heron"),
            ("u1", "w1", "no image"),
        ):
            job = await stored(
                store, paper_job(user, tenant, "fal", prompt=prompt), f"paper:{tenant}", to=None
            )
            if prompt != "no image":
                assert await store.transition(job.id, JobState.SUBMITTING)
                assert await store.transition(job.id, JobState.RUNNING)
                assert await store.complete(job.id, [NewMedia(png(), "image/png", 64, 48)])
            made.append(job)
        fox, heron, _ = made
        shown = await reports.moderation(store)
        assert [j["id"] for j in shown] == [
            heron.id,
            fox.id,
        ]  # newest first; the job with no image is left out
        assert shown[0]["tenant"] == "paper:w2" and shown[0]["user_key"] == "paper:u2"
        assert shown[0]["prompt"] == "a heron" and len(shown[0]["media"]) == 1 and shown[0]["removed"] == 0
        assert [j["id"] for j in await reports.moderation(store, tenant="paper:w1")] == [fox.id]
        assert [j["id"] for j in await reports.moderation(store, person="paper:u2")] == [heron.id]
        assert [j["id"] for j in await reports.moderation(store, person="u1")] == [fox.id]
        assert await reports.moderation(store, state="failed") == []
        assert len(await reports.moderation(store, state="completed")) == 2

        fox_media = shown[1]["media"]
        assert await store.delete_media(fox_media) == 1 and await store.media(fox_media[0]) is None
        assert await store.delete_media(fox_media) == 0  # a second delete finds nothing
        again = await reports.moderation(store, tenant="paper:w1")
        assert again[0]["media"] == [] and again[0]["removed"] == 1

        await reports.record_moderation(
            store, "delete", job_id=fox.id, tenant="paper:w1", user_key="paper:u1"
        )
        await reports.record_moderation(
            store, "block everywhere", job_id=heron.id, tenant="*", user_key="paper:u2"
        )
        kept = await reports.moderation_actions(store)
        assert [(a["action"], a["job_id"], a["tenant"]) for a in kept] == [
            ("block everywhere", heron.id, "*"),
            ("delete", fox.id, "paper:w1"),
        ]


async def test_delete_from_the_view_takes_a_slack_result_down(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "http", HIDREAM_ADMIN_TOKEN=TOKEN) as run:
        summary = await command_to_result(run, "a slack fox")
        other = await command_to_result(run, "a slack heron", user="UBOB0001")
        await run.bot.runner.wait_idle()
        job = await run.bot.engine.job(job_id_of(summary))
        assert job is not None
        [files_msg] = file_messages(fake, summary["thread_ts"])
        assert files_msg["files"] and all(
            f["name"].startswith(f"hidream-{job.id}-") for f in files_msg["files"]
        )
        async with httpx.AsyncClient(base_url=run.bot.server_url) as http:
            await sign_in(http)
            page = (await http.get("/admin/moderation")).text
            assert jobs_shown(page) == [job_id_of(other), job.id]
            deleted = await http.post("/admin/moderation/delete", data={"job": job.id, "csrf": csrf_of(page)})
            assert deleted.headers["Location"] == "/admin/moderation?done=deleted"
        # The summary, the message that carried the files and the files themselves are gone; the
        # other result is untouched.
        assert fake.find(CHANNEL, summary["ts"]) is None
        assert file_messages(fake, summary["thread_ts"]) == []
        assert not any(f"hidream-{job.id}-" in str(f.name) for f in fake.files.values())
        assert fake.find(CHANNEL, other["ts"]) is not None and file_messages(fake, other["thread_ts"])
        assert await run.bot.store.media(job.result_media[0]) is None

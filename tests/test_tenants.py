"""Servers and workspaces are tenants: an admin of one changes nothing that counts in another, an
operator's ceiling holds against the tenant's own admins, budgets refuse before any provider call,
and a refused request fetches and stores no bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.jobs.quota_policy import POLICY, check_budget, check_images
from bot.model.errors import BadInput, QuotaExceeded
from bot.model.requests import ChatRequest, ImageRef, parse_command
from bot.words import usage_text
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.fakes.loopback import serve
from tests.fakes.slack import FakeSlack
from tests.support.harness import BotHarness, sandbox_of, sqlite_of
from tests.support.slack_support import running

GUILD_B = "1300000000000000777"
TARGET = "1500000000000000002"


def chat(
    text: str, *, user: str = "u1", workspace: str = "w1", refs: list[ImageRef] | None = None
) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id=user,
        workspace_id=workspace,
        request=parse_command(text).request,
        references=refs or [],
    )


# --- Discord: two servers ---------------------------------------------------------------------------


def admin_payload(fake: FakeDiscord, guild: str, sub: str, images: int | None) -> dict[str, Any]:
    payload = fake.slash_payload({}, name="hidream-admin", permissions=MEMBER_PERMS | MANAGE_GUILD)
    payload["guild_id"] = guild
    options: list[dict[str, Any]] = [{"name": "member", "type": 6, "value": TARGET}]
    if images is not None:
        options.append({"name": "images", "type": 4, "value": images})
    payload["data"]["options"] = [{"name": sub, "type": 1, "options": options}]
    payload["data"]["resolved"] = {"users": {TARGET: fake.user(TARGET, "bob")}}
    return payload


async def admin_says(fake: FakeDiscord, payload: dict[str, Any], expected: str) -> None:
    before = len(fake.ephemeral_texts())
    await fake.interact(payload)
    await fake.wait_for(lambda: [t for t in fake.ephemeral_texts()[before:] if expected in t])


async def test_a_discord_admin_of_one_server_changes_nothing_in_another(tmp_path: Path) -> None:
    # An operator lets admins set any limit, so that nothing but the tenant bounds what they do.
    env = {"HIDREAM_ADMIN_MAX_LIMIT": 1_000_000}
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake, env) as (bot, _):
        guild_a = fake.guild_id
        # The target made 2 images in server A.
        await fake.interact(fake.slash_payload({"prompt": "a fox", "count": 2}, user_id=TARGET))
        await fake.wait_for(lambda: [m for m in fake.messages.values() if m.get("attachments")])
        await bot.runner.wait_idle()

        async def in_a() -> tuple[int, int]:
            status = await bot.engine.quota("discord", TARGET, guild_a)
            return status.limit, status.used

        assert await in_a() == (25, 2)
        # The admin of server B (a server they made) tries everything on the target.
        await admin_says(
            fake, admin_payload(fake, GUILD_B, "user-limit", 100000), "now has 100000 images a day"
        )
        await admin_says(
            fake, admin_payload(fake, GUILD_B, "grant", 100000), "got 100000 extra images for today"
        )
        await admin_says(fake, admin_payload(fake, GUILD_B, "reset", None), "starts today's count from zero")
        assert await in_a() == (25, 2)
        limit_b = (await bot.engine.quota("discord", TARGET, GUILD_B)).limit
        assert limit_b == 200000  # their own server only
        # And the other way: server A's admin cannot reach server B either.
        await admin_says(fake, admin_payload(fake, guild_a, "user-limit", 0), "now has 0 images a day")
        assert (await bot.engine.quota("discord", TARGET, GUILD_B)).limit == limit_b
        assert await in_a() == (0, 2)


async def test_slack_admins_manage_only_their_own_workspace(tmp_path: Path) -> None:
    async with (
        FakeSlack() as fake,
        running(tmp_path, fake, "socket", HIDREAM_DAILY_IMAGE_QUOTA=5, HIDREAM_ADMIN_MAX_LIMIT=1000) as run,
    ):
        fake.admins.add("UADMIN001")
        engine = run.bot.engine
        home = fake.slash("usage")["team_id"]
        other = dict(fake.slash("grant <@UBOB0001|bob> 50", user="UADMIN001"), team_id="T_OTHER")
        await run.send.command(other)
        await fake.wait_for(lambda: any("50 extra images" in r["text"] for r in fake.responses))
        other = dict(fake.slash("limit <@UBOB0001|bob> 0", user="UADMIN001"), team_id="T_OTHER")
        await run.send.command(other)
        await fake.wait_for(lambda: any("0 images a day" in r["text"] for r in fake.responses))
        assert (await engine.quota("slack", "UBOB0001", home)).limit == 5
        assert (await engine.quota("slack", "UBOB0001", "T_OTHER")).limit == 50
        await run.send.command(fake.slash("limit <@UBOB0001|bob> 2", user="UADMIN001"))
        await fake.wait_for(lambda: any("2 images a day" in r["text"] for r in fake.responses))
        assert (await engine.quota("slack", "UBOB0001", home)).limit == 2
        assert (await engine.quota("slack", "UBOB0001", "T_OTHER")).limit == 50


async def test_an_admins_huge_number_is_answered_plainly(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        fake.admins.add("UADMIN001")
        for text in (
            "grant <@UBOB0001|bob> 99999999999999999999",
            "grant <@UBOB0001|bob> 9223372036854775807",
        ):
            before = len(fake.responses)
            await run.send.command(fake.slash(text, user="UADMIN001"))

            def answered(since: int = before) -> bool:
                return any("out of range" in r["text"] for r in fake.responses[since:])

            await fake.wait_for(answered)
        status = await run.bot.engine.quota("slack", "UBOB0001", fake.slash("x")["team_id"])
        assert (status.limit, status.granted) == (25, 0)


# --- ceilings, budgets, bytes ---------------------------------------------------------------------


def test_the_core_refuses_amounts_no_sane_limit_needs() -> None:
    """Moved from the store contract: the range is the core's rule, checked before the store is asked
    (by the engine for admins, by the operator's commands)."""
    with pytest.raises(BadInput, match="out of range"):
        check_images(10_000_000)
    with pytest.raises(BadInput, match="out of range"):
        check_budget(-1.0)
    for images in (None, 0, 1_000_000):
        check_images(images)  # accepted: no exception
    for usd in (None, 0.0, 1_000_000.0):
        check_budget(usd)


async def test_a_tenant_ceiling_holds_against_its_own_admins_grants_and_resets(tmp_path: Path) -> None:
    env = {"HIDREAM_DAILY_WORKSPACE_QUOTA": 3, "HIDREAM_ADMIN_MAX_LIMIT": 1000}
    async with BotHarness(tmp_path, env=env) as bot:
        await bot.engine.submit(chat("one --n 3"))
        await bot.runner.wait_idle()
        await bot.engine.admin_grant("test", "w1", "u1", 100)
        await bot.engine.admin_set_limit("test", "w1", None, 1000)
        await bot.engine.admin_reset("test", "w1", "u1")
        submits = sandbox_of(bot).submits
        for who in ("u1", "u2"):
            with pytest.raises(QuotaExceeded, match="has made 3 of the 3 images it may make today"):
                await bot.engine.submit(chat("two", user=who))
        assert sandbox_of(bot).submits == submits
        # Another workspace has its own ceiling.
        await bot.engine.submit(chat("elsewhere", workspace="w2"))
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == submits + 1
        with pytest.raises(BadInput, match="not in a direct message"):
            await bot.engine.admin_grant("test", "", "u1", 5)


async def test_a_monthly_budget_refuses_before_any_provider_call(tmp_path: Path) -> None:
    async with BotHarness(tmp_path, env={"HIDREAM_SHOW_SPEND": "true"}) as bot:
        # The sandbox is free: give its jobs a price, as a paid provider's would have.
        provider = bot.engine.provider
        provider.cost_usd = lambda request, tier: 0.04 * request.n  # type: ignore[method-assign]
        await bot.store.set_budget("test:w1", 0.12)
        await bot.engine.submit(chat("first --n 2"))
        await bot.runner.wait_idle()
        submits = sandbox_of(bot).submits
        with pytest.raises(QuotaExceeded) as refused:
            await bot.engine.submit(chat("second --n 2"))
        message = refused.value.user_message
        assert "$0.08 of its $0.12 monthly budget" in message and "would cost $0.08" in message
        assert "The budget resets on " in message and "-01 00:00 UTC" in message
        assert sandbox_of(bot).submits == submits
        usage = usage_text(await bot.engine.quota("test", "u1", "w1"))
        assert "Spend this month: $0.08 of $0.12." in usage
        await bot.engine.submit(chat("a third fits --n 1"))
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == submits + 1


async def test_refused_requests_fetch_and_store_no_bytes(tmp_path: Path) -> None:
    hits: list[str] = []

    async def image(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"0" * 1000, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", image)
    async with serve(app) as url, BotHarness(tmp_path, env={"HIDREAM_DAILY_IMAGE_QUOTA": 0}) as bot:
        refs = [ImageRef(url=f"{url}/ref{i}.png") for i in range(4)]
        for _ in range(5):
            with pytest.raises(QuotaExceeded, match="used all 0 of your images"):
                await bot.engine.submit(chat("an edit", refs=refs))
        assert hits == []
        store = sqlite_of(bot.store)
        async with store.transaction() as db:
            rows = await (await db.execute("SELECT COUNT(*) FROM media")).fetchone()
        # No rows, and no image bytes kept as files (storage/media.py) either.
        assert rows is not None and (rows[0], len(list(store.files.folder.iterdir()))) == (0, 0)
        assert sandbox_of(bot).submits == 0


# --- the database from before tenants ------------------------------------------------------------------


def test_migration_moves_workspace_limits_keeps_blocks_and_drops_untenanted_raises(tmp_path: Path) -> None:
    import asyncio

    from storage.migrations import MIGRATIONS
    from storage.sqlite import SqliteStore as Store

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.executescript(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);"
            "INSERT INTO limits VALUES ('workspace', 'discord:G1', 7), ('user', 'discord:U1', 100000),"
            " ('user', 'discord:U2', 0);"
            "INSERT INTO grants (user_key, day, images, created_at) VALUES ('discord:U1', '2026-11-29', 500, 0);"
            "INSERT INTO ledger VALUES ('j1', 'discord:U1', 'discord:', '2026-11-29', 2, 'committed', 0, 0),"
            " ('j2', 'discord:U1', 'discord:G1', '2026-11-29', 1, 'committed', 0, 0);"
        )

    async def check() -> None:
        async with Store(path, policy=POLICY, default_limit=25, clock=lambda: 1_795_000_000.0) as store:
            assert await store.schema_version() == len(MIGRATIONS)
            assert await store.limits("discord:G1") == [("members", "", 7, "admin")]
            assert await store.tenants_of("discord:U1") in (
                ["discord:dm:U1", "discord:G1"],
                ["discord:G1", "discord:dm:U1"],
            )
            status = await store.quota("discord:U1", "discord:G1")
            assert (status.limit, status.granted) == (7, 0)
            blocked = await store.quota("discord:U2", "discord:G1")
            assert (blocked.limit, blocked.source) == (
                0,
                "your own limit, set by an operator for every server",
            )

    asyncio.run(check())


# --- decided defaults for a public bot ---------------------------------------------------------------


async def test_a_new_servers_admins_may_not_lift_members_past_the_daily_quota(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket", HIDREAM_DAILY_IMAGE_QUOTA=5) as run:
        fake.admins.add("UADMIN001")
        engine, team = run.bot.engine, fake.slash("usage")["team_id"]

        async def says(text: str, expected: str) -> None:
            before = len(fake.responses)
            await run.send.command(fake.slash(text, user="UADMIN001"))
            await fake.wait_for(lambda: any(expected in r["text"] for r in fake.responses[before:]))

        await says("limit <@UBOB0001|bob> 6", "at most 5 images a day. An operator of the bot may allow more")
        await says("limit workspace 100000", "at most 5 images a day")
        await says("limit <@UBOB0001|bob> 5", "5 images a day")
        await says("grant <@UBOB0001|bob> 1", "admins here may give a member at most 5 a day (with grants)")
        status = await engine.quota("slack", "UBOB0001", team)
        assert (status.limit, status.granted, status.admin_max) == (5, 0, 5)
        # An operator allows more in this workspace only.
        await run.bot.store.set_limit(f"slack:{team}", "admin_max", "", 50, by="operator")
        await says("limit <@UBOB0001|bob> 40", "40 images a day")
        await says("grant <@UBOB0001|bob> 10", "10 extra images for today")
        assert (await engine.quota("slack", "UBOB0001", team)).limit == 50
        elsewhere = dict(fake.slash("limit <@UBOB0001|bob> 40", user="UADMIN001"), team_id="T_OTHER")
        before = len(fake.responses)
        await run.send.command(elsewhere)
        await fake.wait_for(lambda: any("at most 5 images" in r["text"] for r in fake.responses[before:]))


async def test_one_person_has_one_daily_quota_across_every_server(tmp_path: Path) -> None:
    env = {"HIDREAM_DAILY_PERSON_QUOTA": 3, "HIDREAM_ADMIN_MAX_LIMIT": 100}
    async with BotHarness(tmp_path, env=env) as bot:
        for workspace in ("w1", "w2", "w3"):
            await bot.engine.admin_set_limit("test", workspace, "u1", 100)
            await bot.engine.submit(chat("a fox", workspace=workspace))
        await bot.runner.wait_idle()
        submits = sandbox_of(bot).submits
        with pytest.raises(
            QuotaExceeded, match="3 of the 3 images one person may make in a day across every"
        ):
            await bot.engine.submit(chat("a fourth", workspace="w4"))
        assert sandbox_of(bot).submits == submits
        await bot.engine.submit(chat("someone else", user="u2", workspace="w4"))
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == submits + 1

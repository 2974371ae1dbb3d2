"""`hidream-bot run` wiring: with both platforms' credentials set, both surfaces start beside each other
on one engine (the factories bot.cli uses), and each answers its own requests."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from bot.app import select, start_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import with_files
from tests.fakes.slack import FakeSlack
from tests.support.harness import settings_for_test, sqlite_of


async def test_discord_and_slack_run_side_by_side(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSlack() as slack, AsyncExitStack() as stack:
        settings = settings_for_test(
            tmp_path,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_BASE_URL=discord.api_url,
            DISCORD_GATEWAY_URL=discord.gateway_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            SLACK_API_BASE_URL=slack.api_url,
        )
        selection = select(settings)
        assert [plugin.name for plugin, _ in selection.surfaces] == ["discord", "slack"]  # no console
        assert selection.surfaces[1][1].mode == "socket"
        bot = await start_bot(settings, stack, selection=selection)
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{bot.server_url}/healthz")).json()
        assert health["surfaces"] == ["discord", "slack"]

        await slack.send_envelope("slash_commands", slack.slash("a slack fox --seed 1"))
        await discord.interact(discord.slash_payload({"prompt": "a discord fox", "seed": 2}))
        await bot.runner.wait_idle()
        uploaded = await slack.wait_for(lambda: slack.called("files.completeUploadExternal"))
        assert len(uploaded) == 1
        posted = await discord.wait_for(lambda: [m for m in discord.messages.values() if with_files(m)])
        assert len(posted) == 1
        # The Discord job may have been admitted after the first wait began: its upload is seen, now
        # let it settle (delivering -> delivered) before reading the store.
        await bot.runner.wait_idle()
        async with sqlite_of(bot.store).transaction() as db:
            rows = await (await db.execute("SELECT surface, state FROM jobs ORDER BY surface")).fetchall()
        assert [tuple(r) for r in rows] == [("discord", "delivered"), ("slack", "delivered")]

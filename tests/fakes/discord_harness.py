"""A running bot with the Discord adapter connected to a FakeDiscord, for scenario tests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from adapters.discord import DiscordAdapter, DiscordSettings
from bot.app import Bot
from tests.fakes.discord import FakeDiscord
from tests.support.harness import BotHarness


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@asynccontextmanager
async def discord_bot(
    tmp_path: Path,
    fake: FakeDiscord,
    env: dict[str, Any] | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[Bot, DiscordAdapter]]:
    settings_env = {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        **(env or {}),
    }
    made: list[DiscordAdapter] = []

    def factory(bot: Bot) -> DiscordAdapter:
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        if sleep is not None:
            extra["sleep"] = sleep
        settings = bot.settings.section(DiscordSettings)
        made.append(DiscordAdapter(bot.engine, settings, guild_ready_timeout=0.05, **extra))
        return made[0]

    async with BotHarness(tmp_path, env=settings_env, surfaces=[factory]) as bot:
        yield bot, made[0]


def with_files(message: dict[str, Any]) -> bool:
    return bool(message.get("attachments")) and not message.get("deleted")


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])]


async def told(fake: FakeDiscord, payload: dict[str, Any], expected: str) -> str:
    """Send an interaction; the ephemeral answer that says `expected`."""
    before = len(fake.ephemeral_texts())
    await fake.interact(payload)
    found = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts()[before:] if expected in t])
    return str(found[0])


async def result_of(fake: FakeDiscord, bot: Bot, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a request; its answer once it carries the image, after the bot is idle again."""
    await fake.interact(payload)
    message = await fake.wait_for(
        lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""), {})) and with_files(m) and m
    )
    await bot.runner.wait_idle()
    return dict(message)

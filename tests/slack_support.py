"""Starting the real bot with the Slack adapter against tests/fakes/slack.py, in either mode."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from adapters.slack import SlackAdapter
from adapters.slack.translate import RESULT_EVENT
from bot.app import Bot, start_bot
from bot.config import Settings
from tests.fakes.slack import FakeSlack, HttpSender, SocketSender

CHANNEL = "C_GENERAL"


@dataclass
class Running:
    bot: Bot
    adapter: SlackAdapter
    send: HttpSender | SocketSender
    fake: FakeSlack

    async def job_count(self) -> int:
        async with self.bot.store.transaction() as db:
            cur = await db.execute("SELECT COUNT(*) FROM jobs")
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])


def settings_for(tmp_path: Path, fake: FakeSlack, mode: str, **env: Any) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_API_BASE_URL": fake.api_url,
        "HIDREAM_PROVIDER": "sandbox",
        "HIDREAM_SANDBOX_DELAY_SECONDS": 0,
        "HIDREAM_HTTP_HOST": "127.0.0.1",
        "HIDREAM_HTTP_PORT": 0,
        "HIDREAM_DB_PATH": tmp_path / "bot.db",
        "HIDREAM_PUBLIC_URL": "",
    }
    if mode == "socket":
        values["SLACK_APP_TOKEN"] = fake.app_token
    else:
        values["SLACK_SIGNING_SECRET"] = fake.signing_secret
    values.update(env)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running(tmp_path: Path, fake: FakeSlack, mode: str, **env: Any) -> AsyncIterator[Running]:
    settings = settings_for(tmp_path, fake, mode, **env)
    made: list[SlackAdapter] = []

    def factory(bot: Bot) -> SlackAdapter:
        adapter = SlackAdapter(bot.settings, bot.engine)
        adapter.register_routes(bot.server.app)
        made.append(adapter)
        return adapter

    async with AsyncExitStack() as stack:
        bot = await start_bot(settings, stack, [factory])
        sender: HttpSender | SocketSender
        if mode == "http":
            sender = HttpSender(fake, f"{bot.server_url}/slack/events", bot.http)
        else:
            sender = SocketSender(fake)
        yield Running(bot, made[0], sender, fake)


def png(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def summaries(fake: FakeSlack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    """The result messages (summary with buttons) the bot posted, in order."""
    return [
        m
        for m in fake.messages.get(channel, [])
        if (m.get("metadata") or {}).get("event_type") == RESULT_EVENT
    ]


def job_id_of(summary: dict[str, Any]) -> str:
    return str(summary["metadata"]["event_payload"]["job_id"])


def file_messages(fake: FakeSlack, thread_ts: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return [m for m in fake.thread(channel, thread_ts) if m.get("files") and m.get("bot_id")]


def roots(fake: FakeSlack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return [m for m in fake.messages.get(channel, []) if m.get("bot_id") and not m.get("thread_ts")]

"""Starting the real bot with the Slack adapter against tests/fakes/slack.py, in either mode."""

from __future__ import annotations

import io
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from adapters.slack import SlackAdapter, SlackSettings
from adapters.slack.translate import RESULT_EVENT
from bot.app import Bot, start_bot
from bot.model.config import Settings
from tests.fakes.slack import FakeSlack, sign
from tests.support.harness import sqlite_of


async def command_to_result(
    run, text: str = "a red fox in snow --seed 7", user: str = "UALICE01"
) -> dict[str, Any]:
    fake = run.fake
    before = len(summaries(fake))
    assert await run.send.command(fake.slash(text, user=user)) == 200
    found: list[dict[str, Any]] = await fake.wait_for(lambda: summaries(fake)[before:])
    return found[0]


CHANNEL = "C_GENERAL"


@dataclass
class Running:
    bot: Bot
    adapter: SlackAdapter
    send: HttpSender | SocketSender
    fake: FakeSlack

    async def job_count(self) -> int:
        async with sqlite_of(self.bot.store).transaction() as db:
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
        adapter = SlackAdapter(bot.settings.section(SlackSettings), bot.engine)
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


class HttpSender:
    """Slack's side of HTTP mode: signed POSTs to the bot's /slack/events."""

    def __init__(self, fake: FakeSlack, events_url: str, http: httpx.AsyncClient) -> None:
        self.fake, self.events_url, self.http = fake, events_url, http

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: str | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        ts = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(secret or self.fake.signing_secret, ts, body),
        }
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        return await self.http.post(self.events_url, content=body, headers=headers)

    async def command(self, form: dict[str, str]) -> int:
        resp = await self.post(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")
        return resp.status_code

    async def event(self, body: dict[str, Any], retry_num: int | None = None) -> int:
        resp = await self.post(json.dumps(body).encode(), "application/json", retry_num=retry_num)
        return resp.status_code

    async def interaction(self, payload: dict[str, Any]) -> int:
        form = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        resp = await self.post(form, "application/x-www-form-urlencoded")
        return resp.status_code


class SocketSender:
    """Slack's side of Socket Mode: envelopes over the websocket; 200 stands for an acknowledgement."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake

    async def command(self, form: dict[str, str]) -> int:
        await self.fake.send_envelope("slash_commands", dict(form))
        return 200

    async def event(self, body: dict[str, Any], retry_num: int | None = None) -> int:
        await self.fake.send_envelope("events_api", body, retry_attempt=retry_num or 0)
        return 200

    async def interaction(self, payload: dict[str, Any]) -> int:
        await self.fake.send_envelope("interactive", payload)
        return 200

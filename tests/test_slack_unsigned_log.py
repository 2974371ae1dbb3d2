"""An unsigned request to /slack/events puts (almost) nothing in the log, and never its body.

The whole bot runs as `hidream-bot run` does (`bot.cli.main`, in this process, its log on stderr), with
Slack in HTTP mode against the loopback fake on a thread of its own. Anyone can POST to /slack/events:
bolt refuses a request whose signature is wrong or missing, and logs its whole body at INFO while doing
so, which would let any sender fill the disk (1 MiB a request) or write lines of their own into the log.
The Slack plugin holds bolt's loggers above that (`SlackPlugin.loggers`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import sys
import threading
from pathlib import Path

import httpx
import pytest

import bot.cli
from bot.cli import main
from tests.fakes.slack import FakeSlack
from tests.support.background import background, stop_the_running_bot
from tests.support.processes import bot_env, logging_as_in_a_fresh_process

TIMEOUT = 60
REQUESTS = 20
MIB = 1024 * 1024
FORGED = "INFO hidream-bot: job 0123 delivered (forged)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Ready(logging.Handler):
    """Set once `run` says the bot is ready: requests sent earlier could race its start-up."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ready = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "hidream-bot" and record.getMessage().startswith("ready:"):
            self.ready.set()


def unsigned_body() -> bytes:
    """A slash command's form, padded to 1 MiB, with a line break and a forged log line in its text."""
    head = f"command=%2Fhidream&team_id=T1&user_id=U1&text=a+fox\n{FORGED}\n".encode()
    return head + b"x" * (MIB - len(head))


async def flood(url: str, ready: threading.Event, stderr: io.StringIO, seen: dict[str, object]) -> None:
    """Once the bot is ready: REQUESTS unsigned POSTs, the log's growth meanwhile; then stop the bot."""
    try:
        assert await asyncio.to_thread(ready.wait, TIMEOUT)
        body = unsigned_body()
        before = len(stderr.getvalue())
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            statuses = []
            for i in range(REQUESTS):
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                if i % 2:  # half with a signature and timestamp that are wrong, half with none
                    headers |= {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": "v0=00"}
                statuses.append((await client.post(url, content=body, headers=headers)).status_code)
        seen["statuses"] = statuses
        seen["added"] = stderr.getvalue()[before:]
    finally:
        await stop_the_running_bot()


@pytest.mark.parametrize("level", ["", "DEBUG"])
def test_unsigned_slack_requests_add_almost_nothing_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    port = free_port()
    stderr = io.StringIO()
    readiness = Ready()
    seen: dict[str, object] = {}
    setup = bot.cli._setup_logging

    def setup_then_watch(*args: object, **kwargs: object) -> bot.cli.Redactor:
        redactor = setup(*args, **kwargs)  # type: ignore[arg-type]
        logging.getLogger().addHandler(readiness)
        return redactor

    with background() as bg, monkeypatch.context() as patch, logging_as_in_a_fresh_process():
        slack = bg.enter(FakeSlack())
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_BASE_URL": slack.api_url,
            "HIDREAM_HTTP_PORT": str(port),
            "HIDREAM_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        if level:
            env["HIDREAM_LOG_LEVEL"] = level
        for name, value in bot_env(tmp_path, **env).items():
            patch.setenv(name, value)
        patch.setattr(sys, "stderr", stderr)
        patch.setattr(sys, "stdin", io.StringIO(""))
        patch.setattr(bot.cli, "_setup_logging", setup_then_watch)
        running = bg.submit(flood(f"http://127.0.0.1:{port}/slack/events", readiness.ready, stderr, seen))
        try:
            code = main(["run"])
        finally:
            logging.getLogger().removeHandler(readiness)
        running.result(TIMEOUT)
        assert not slack.called("chat.postMessage") and not slack.responses

    log = stderr.getvalue()
    assert code == 0, log[-2000:]
    assert seen["statuses"] == [401] * REQUESTS
    added = str(seen["added"])
    # The log does say things (the bot's start), but next to nothing about 20 MiB of unsigned requests.
    assert "ready:" in log
    assert len(added) < 2_000, added[:2000]
    assert FORGED not in log and "x" * 64 not in log and "a+fox" not in log

"""No secret in the logs, at any level, and a database only its owner can read.

The whole bot runs as `hidream-bot run` does (`bot.cli.main`, in this process) at HIDREAM_LOG_LEVEL=DEBUG,
with Discord, Slack (Socket Mode) and fal (with callbacks) as loopback fakes on a thread of their own.
One Discord and one Slack job go through end to end; every record any logger emits is captured, before
any handler's filter, and must not contain a token, key, the media-link secret or a callback token.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import socket
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import bot.cli
from bot.cli import main
from storage.sqlite import SqliteStore as Store
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import with_files
from tests.fakes.fal import FalFake
from tests.fakes.slack import FakeSlack
from tests.support.background import Background, background, stop_the_running_bot
from tests.support.processes import bot_env, logging_as_in_a_fresh_process

TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Capture(logging.Handler):
    """Every record that reaches the root logger, formatted with its arguments and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        # Set once `run` says the bot is ready: requests sent earlier could race its start-up.
        self.ready = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if record.name == "hidream-bot" and record.getMessage().startswith("ready:"):
            self.ready.set()


def modes(db: Path) -> dict[str, int]:
    """The permission bits of the database and of its side files that exist."""
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in files if f.exists()}


async def two_jobs(
    discord: FakeDiscord, slack: FakeSlack, ready: threading.Event, db: Path, seen: dict[str, Any]
) -> None:
    """A /hidream on Discord and one on Slack, each until its image is posted; then the bot is stopped.
    `seen`: the interaction's token (a credential for 15 minutes), and the database files' modes while
    the bot runs (SQLite deletes -wal and -shm on a clean close)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            assert await asyncio.to_thread(ready.wait, TIMEOUT)
            interaction = await discord.interact(
                discord.slash_payload({"prompt": "a fox in snow", "seed": 7})
            )
            seen["interaction token"] = interaction["token"]
            await discord.wait_for(lambda: [m for m in discord.messages.values() if with_files(m)], TIMEOUT)
            await slack.send_envelope("slash_commands", slack.slash("a slack fox --seed 2"))
            await slack.wait_for(lambda: slack.called("files.completeUploadExternal"), TIMEOUT)
            seen.update(modes(db))
    finally:
        await stop_the_running_bot()


def run_bot(
    tmp_path: Path,
    bg: Background | None,
    env: dict[str, str],
    driver: Callable[[threading.Event], Any] | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str = "",
) -> tuple[int, str, Capture]:
    capture = Capture()
    setup = bot.cli._setup_logging

    def setup_then_capture(*args: Any, **kwargs: Any) -> Any:
        redactor = setup(*args, **kwargs)
        # First in line, so it sees each record as its logger made it, before any handler's filter.
        logging.getLogger().handlers.insert(0, capture)
        return redactor

    capsys.readouterr()
    with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
        for name, value in bot_env(tmp_path, **env).items():
            patch.setenv(name, value)
        patch.setattr(sys, "stdin", io.StringIO(stdin))
        patch.setattr(bot.cli, "_setup_logging", setup_then_capture)
        running = bg.submit(driver(capture.ready)) if bg is not None and driver is not None else None
        code = main(["run"])
        if running is not None:
            running.result(TIMEOUT)
    return code, capsys.readouterr().err, capture


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_debug_logs_of_full_jobs_carry_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    with background() as bg:
        discord = bg.enter(FakeDiscord(token="MTE4.discord-token-never-logged.x9Zq"))
        slack = bg.enter(
            FakeSlack(
                bot_token="xoxb-1-slack-bot-never-logged",
                app_token="xapp-1-slack-app-never-logged",
                signing_secret="slack-signing-never-logged",
            )
        )
        fal = bg.enter(FalFake(key="fal-key-never-logged").started())
        port = free_port()
        secrets = {
            "DISCORD_TOKEN": discord.token,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "FAL_KEY": fal.key,
            # Configured but not the chosen provider: still never printed.
            "PIXAZO_API_KEY": "pixazo-key-never-logged",
            "ATLASCLOUD_API_KEY": "atlas-key-never-logged",
            "WAVESPEED_API_KEY": "wavespeed-key-never-logged",
            "WAVESPEED_WEBHOOK_SECRET": "wavespeed-hook-never-logged",
        }
        env = {
            **secrets,
            "DISCORD_API_BASE_URL": discord.api_url,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "SLACK_API_BASE_URL": slack.api_url,
            "HIDREAM_PROVIDER": "fal",
            "FAL_QUEUE_URL": fal.url,
            "FAL_JWKS_URL": fal.jwks_url,
            "HIDREAM_HTTP_PORT": str(port),
            "HIDREAM_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HIDREAM_LOG_LEVEL": "DEBUG",
            "HIDREAM_LOG_FORMAT": log_format,
        }
        seen: dict[str, Any] = {}
        with umask(0o022):  # the usual default: what the store does about it is what is tested
            code, stderr, capture = run_bot(
                tmp_path,
                bg,
                env,
                lambda ready: two_jobs(discord, slack, ready, tmp_path / "bot.db", seen),
                monkeypatch,
                capsys,
            )
        callbacks = list(fal.callbacks_sent)
    assert code == 0, stderr
    assert callbacks and all(200 <= status < 300 for _, status in callbacks)

    with sqlite3.connect(tmp_path / "bot.db") as db:
        tokens = [row[0] for row in db.execute("SELECT callback_token FROM jobs")]
        (media_secret,) = db.execute("SELECT value FROM meta WHERE key='media-links'").fetchone()
    assert len(tokens) == 2
    logged = "\n".join(capture.lines)
    assert "DEBUG" in logged and "job" in logged  # the capture did see the bot's records
    for name, value in {**secrets, "media-link secret": media_secret}.items():
        assert value not in logged, f"{name} appears in the log records"
        assert value not in stderr, f"{name} appears on stderr"
    for token in [*tokens, seen.pop("interaction token")]:
        assert token not in logged and token not in stderr
    if log_format == "json":
        job_lines = json_lines(stderr, tokens=len(tokens))
        assert {line["provider"] for line in job_lines} == {"fal"}
        assert {line["tenant"].split(":")[0] for line in job_lines} == {"discord", "slack"}
    assert seen == {"bot.db": 0o600, "bot.db-wal": 0o600, "bot.db-shm": 0o600}


def json_lines(stderr: str, *, tokens: int) -> list[dict[str, Any]]:
    """Every line on stderr is one JSON object with the time, level, logger and message; a line the
    runner writes about a job (`job <id> ...`) names that job, its tenant, provider and state. The
    lines about jobs, for `tokens` jobs."""
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    about = [line for line in lines if re.match(r"job [0-9a-f]{32}\b", line["message"])]
    assert len({line["job_id"] for line in about}) == tokens
    for line in about:
        assert line["message"].split()[1] == line["job_id"]
        assert line["tenant"] and line["provider"] and line["state"]
    assert {"delivered", "running"} <= {line["state"] for line in about}
    return about


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_database_made_before_is_made_private_on_open(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with umask(0o022):
        sqlite3.connect(db).close()
        assert modes(db) == {"old.db": 0o644}
        async with Store(db, default_limit=1) as store:
            await store.secret("media-links")
            assert modes(db) == {"old.db": 0o600, "old.db-wal": 0o600, "old.db-shm": 0o600}


def test_the_sandbox_state_folder_is_private(tmp_path: Path, monkeypatch, capsys) -> None:
    """The console on the sandbox, as `printf ... | hidream-bot run` runs it: what it leaves beside the
    database is the owner's only, while the images it writes for the user stay as they were."""

    with umask(0o022), monkeypatch.context() as patch, logging_as_in_a_fresh_process():
        # `check` first, as an operator would: it builds the provider too.
        for name, value in bot_env(tmp_path).items():
            patch.setenv(name, value)
        assert main(["check"]) == 0
    with umask(0o022):
        code, stderr, _ = run_bot(
            tmp_path, None, {}, None, monkeypatch, capsys, stdin="/hidream a fox --seed 1\n"
        )
    assert code == 0, stderr
    state = tmp_path / "bot.db.sandbox"
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o700
    assert modes(tmp_path / "bot.db") == {"bot.db": 0o600}
    [image] = (tmp_path / "out").iterdir()
    assert stat.S_IMODE(image.stat().st_mode) == 0o644


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_handler_masks_what_would_still_reach_it(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    """The second line of defence: whatever a logger lets through, the handler masks known secret values
    (given at set-up, or later, as the media-link secret is) and the tokens in callback, interaction and
    Slack URLs, in messages and in tracebacks alike."""
    capsys.readouterr()
    with logging_as_in_a_fresh_process():
        redactor = bot.cli._setup_logging("DEBUG", ["fal-key-0123456789"], log_format)
        redactor.add("9f8e7d6c5b4a39281706f5e4d3c2b1a0")
        leaky = logging.getLogger("tests.leaky")
        leaky.info("using key %s", "fal-key-0123456789")
        leaky.info("ready: provider fal (callbacks at http://bot.example/webhooks/), surfaces []")
        leaky.info("POST http://127.0.0.1:8080/webhooks/Zr4-cb_token?x=1 answered 200")
        leaky.info("PATCH https://discord.com/api/v10/webhooks/1200/aW50ZXJhY3Rpb24.tok/messages/@original")
        leaky.info("POST https://discord.com/api/v10/interactions/1800/aW50ZXJhY3Rpb24.tok/callback")
        leaky.info(
            "headers {'Authorization': 'Bearer opaque-credential'} to https://hooks.slack.com/commands/T1/2/x"
        )
        leaky.info(
            "socket wss://wss-primary.slack.com/link/?ticket=ab-cd-ef&app_id=A1, token xapp-1-A1-99-ff"
        )
        try:
            raise RuntimeError("signing with 9f8e7d6c5b4a39281706f5e4d3c2b1a0 failed")
        except RuntimeError:
            leaky.exception("media link")
    err = capsys.readouterr().err
    for secret in (
        "fal-key-0123456789",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "Zr4-cb_token",
        "aW50ZXJhY3Rpb24.tok",
        "opaque-credential",
        "commands/T1/2/x",
        "ab-cd-ef",
        "xapp-1-A1-99-ff",
    ):
        assert secret not in err, secret
    assert "/webhooks/<redacted>?x=1" in err and "/webhooks/1200/<redacted>/messages/@original" in err
    assert "/interactions/1800/<redacted>/callback" in err and "Traceback" in err
    assert "(callbacks at http://bot.example/webhooks/), surfaces []" in err  # no token, nothing masked
    if log_format == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert len(lines) == 8 and lines[-1]["exception"].startswith("Traceback")

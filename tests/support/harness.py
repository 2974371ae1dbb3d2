"""A whole bot in the test's event loop: store, HTTP server on an ephemeral loopback port, provider,
admission (`bot.engine`) and the one worker (`bot.runner`)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest

from bot.app import Bot, SurfaceFactory, start_bot
from bot.model.config import Settings
from bot.providers.sandbox.provider import SandboxProvider, SandboxService
from storage.sqlite import SqliteStore
from storage.store import Store

SETTINGS_ENV = (
    "DISCORD_TOKEN DISCORD_API_BASE_URL DISCORD_GATEWAY_URL DISCORD_GUILD_IDS DISCORD_NSFW_POLICY DISCORD_SHARD_COUNT "
    "DISCORD_SHARD_IDS SLACK_BOT_TOKEN SLACK_SIGNING_SECRET SLACK_APP_TOKEN SLACK_API_BASE_URL SLACK_ADMIN_USERS "
    "SLACK_CLIENT_ID SLACK_CLIENT_SECRET SLACK_SCOPES HIDREAM_PROVIDER HIDREAM_PROVIDERS HIDREAM_MODEL "
    "HIDREAM_SAFETY_CHECKER PIXAZO_API_KEY PIXAZO_BASE_URL ATLASCLOUD_API_KEY ATLASCLOUD_BASE_URL FAL_KEY "
    "FAL_QUEUE_URL FAL_JWKS_URL FAL_USER_ID WAVESPEED_API_KEY WAVESPEED_BASE_URL WAVESPEED_WEBHOOK_SECRET HIDREAM_HTTP_HOST "
    "HIDREAM_HTTP_PORT HIDREAM_PUBLIC_URL HIDREAM_DB_PATH HIDREAM_DATABASE_URL HIDREAM_DAILY_IMAGE_QUOTA HIDREAM_DAILY_WORKSPACE_QUOTA HIDREAM_ADMIN_MAX_LIMIT HIDREAM_DAILY_PERSON_QUOTA "
    "HIDREAM_SHOW_SPEND HIDREAM_OUTPUT_DIR HIDREAM_CONSOLE_DEFAULTS HIDREAM_MEDIA_RETENTION_DAYS HIDREAM_MAX_ACTIVE_JOBS HIDREAM_MAX_RESULTS_IN_MEMORY HIDREAM_MAX_UPLOADS HIDREAM_LEASE_SECONDS "
    "HIDREAM_JOB_TIMEOUT_SECONDS HIDREAM_MAX_IMAGE_BYTES HIDREAM_SANDBOX_DELAY_SECONDS HIDREAM_SANDBOX_ALLOW_REMOTE "
    "HIDREAM_LOG_LEVEL HIDREAM_LOG_FORMAT HIDREAM_ADMIN_TOKEN HIDREAM_RESULT_FETCH_SECONDS HIDREAM_TRUSTED_RESULT_HOSTS HIDREAM_SECRET_KEY HIDREAM_SECRET_KEY_OLD"
    " HIDREAM_TRUSTED_PROXIES HIDREAM_C2PA_CERT HIDREAM_C2PA_KEY"
    " HIDREAM_MAX_SUBJECTS HIDREAM_SUBJECT_STORAGE_MB HIDREAM_SUBJECT_RETENTION_DAYS"
    " HIDREAM_MEDIA_URL HIDREAM_S3_ENDPOINT HIDREAM_MEDIA_REDIRECT AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID"
    " AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN"
).split()
LOOPBACK_RESULT_HOSTS = "127.0.0.1,localhost"


def settings_for_test(tmp_path: Path, **env: Any) -> Settings:
    """Settings for a test: nothing from the developer's shell or .env, a private DB, an ephemeral port."""
    values: dict[str, Any] = {
        "HIDREAM_DB_PATH": str(tmp_path / "bot.db"),
        "HIDREAM_HTTP_PORT": 0,
        "HIDREAM_SANDBOX_DELAY_SECONDS": 0,
        "HIDREAM_OUTPUT_DIR": str(tmp_path / "out"),
        # The fake providers serve their result files on loopback, which result URLs may not name
        # unless trusted (tests/test_result_hosts.py runs without this).
        "HIDREAM_TRUSTED_RESULT_HOSTS": LOOPBACK_RESULT_HOSTS,
    }
    values.update(env)
    return Settings(_env_file=None, **values)


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip a test this machine cannot run; under CI (CI=true) that is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: under CI a test may not skip")
    pytest.skip(reason)


def sandbox_of(bot: Bot) -> SandboxService:
    """The sandbox provider's service in a running bot (its counters and the jobs it received)."""
    provider = bot.provider
    assert isinstance(provider, SandboxProvider) and provider.service is not None
    return provider.service


class BotHarness:
    """`async with BotHarness(tmp_path, env={...}) as bot:` — a running bot; `bot.engine` (admission and
    queries), `bot.runner` (the worker: wait_idle, wait_job, wake), `bot.server_url`. `core_options`:
    `bot.app.build_core`'s (clock, sleep, callback_grace, breaker, resolver, typed_http...)."""

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, Any] | None = None,
        surfaces: list[SurfaceFactory] | None = None,
        *,
        callbacks: bool = False,
        **core_options: Any,
    ) -> None:
        self.settings = settings_for_test(tmp_path, **(env or {}))
        self.surfaces = surfaces or []
        self.callbacks = callbacks
        self.core_options = core_options
        self._stack = AsyncExitStack()
        self.bot: Bot | None = None

    async def __aenter__(self) -> Bot:
        await self._stack.__aenter__()
        try:
            self.bot = await start_bot(
                self.settings,
                self._stack,
                self.surfaces,
                loopback_public_url=self.callbacks,
                **self.core_options,
            )
        except BaseException:
            await self._stack.aclose()
            raise
        return self.bot

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.__aexit__(*exc)


def sqlite_of(store: Store) -> SqliteStore:
    """A bot's store as SQLite, for the tests that read its rows with SQL (their bots run on SQLite):
    told by the dialect the store speaks, not by its class."""
    assert store.database.dialect.name == "sqlite", store.database.dialect.name
    return cast(SqliteStore, store)


class RecordedLines(logging.Handler):
    """Within `with`, the log lines of `logger` that contain `needle`: something a test can wait for
    when the only sign that the bot handled an input is that it said so."""

    def __init__(self, logger: str, needle: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(logger)
        self.needle = needle
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if self.needle in line:
            self.lines.append(line)

    def __enter__(self) -> RecordedLines:
        self.logger.addHandler(self)
        self._level = self.logger.level
        if not self.logger.isEnabledFor(logging.INFO):
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


async def until(check: Callable[[], object], within: float = 60.0) -> None:
    """Wait for a condition the bot's tasks bring about (bounded; never a fixed sleep)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 (the bot's own tasks change what is checked)
            await asyncio.sleep(0.005)


# Sockets that keep `closed_port`'s ports taken for the rest of the test run.
_CLOSED: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port nothing listens on, so connecting is refused at once; kept bound (never
    listening) for the rest of the run, so no server of a test (port 0) can be given it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _CLOSED.append(sock)
    return int(sock.getsockname()[1])

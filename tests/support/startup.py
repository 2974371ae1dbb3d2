"""Shared by several test modules (moved from tests/test_startup.py)."""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import discord
import pytest

from bot.cli import main
from tests.fakes.discord import FakeDiscord
from tests.support.processes import bot_env, logging_as_in_a_fresh_process

# INTERFACE.md: a wrong token ends the bot within 30 seconds.
LIMIT = 30.0

INFO_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO [\w.-]+: ")


@pytest.fixture(params=["INFO", "WARNING"])
def level(request: pytest.FixtureRequest) -> str:
    """HIDREAM_LOG_LEVEL: the default, where the start's progress lines come before the failure, and
    WARNING, where the failure's line is all there is."""
    return str(request.param)


def run_fails(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    level: str,
    **env: str,
) -> str:
    """`hidream-bot run` with these settings must fail fast, with no traceback and one line of its own."""
    capsys.readouterr()
    # discord.py warns about voice once per process: make this run the first, so the warning would show.
    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
        for name, value in bot_env(tmp_path, HIDREAM_LOG_LEVEL=level, **env).items():
            patch.setenv(name, value)
        patch.setattr(sys, "stdin", io.StringIO(""))
        started = time.monotonic()
        code = main(["run"])
        took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code != 0 and took < LIMIT, (code, took, err)
    assert "Traceback" not in err and out == "", err
    lines = [line for line in err.splitlines() if line.strip()]
    # Besides one-line INFO records of the start (at INFO), exactly one line: the failure.
    failure = [line for line in lines if not INFO_RECORD.match(line)]
    assert len(failure) == 1 and failure[0].startswith("hidream-bot: "), err
    if level == "WARNING":
        assert lines == failure
    return failure[0]


def discord_env(fake: FakeDiscord, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        **extra,
    }

"""Shared by several test modules (moved from tests/test_cli.py)."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from bot.cli import main
from tests.support.harness import LOOPBACK_RESULT_HOSTS


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


class Cli(Protocol):
    def __call__(self, *args: str, stdin: str = "", **env: str) -> Run: ...


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`cli("run", stdin=..., HIDREAM_X="...")`: `hidream-bot run` in this process; cwd is tmp_path."""

    def run(*args: str, stdin: str = "", **env: str) -> Run:
        capsys.readouterr()  # only this call's output
        with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
            for name, value in bot_env(tmp_path, **env).items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(stdin))
            code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The settings of a test run: a private database and output directory, any free port, no delay."""
    return {
        "HIDREAM_DB_PATH": str(tmp_path / "bot.db"),
        "HIDREAM_HTTP_PORT": "0",
        "HIDREAM_OUTPUT_DIR": str(tmp_path / "out"),
        "HIDREAM_SANDBOX_DELAY_SECONDS": "0",
        # The fakes serve result files on loopback, which result URLs may not name unless trusted.
        "HIDREAM_TRUSTED_RESULT_HOSTS": LOOPBACK_RESULT_HOSTS,
        **extra,
    }


def process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, minus every setting, plus the test's settings."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("HIDREAM_", "DISCORD_", "SLACK_", "PIXAZO_", "ATLASCLOUD_", "FAL_", "WAVESPEED_")
        )
    }
    return keep | bot_env(tmp_path, **extra)


@contextmanager
def logging_as_in_a_fresh_process() -> Iterator[None]:
    """Let `main()`'s `logging.basicConfig` take effect, then put logging back as it was.

    Under pytest the root logger already has pytest's capture handlers, so `basicConfig` would do nothing
    and the log lines a user sees on stderr (at the level HIDREAM_LOG_LEVEL sets) would never be written.
    Lifting those handlers off for the call makes `main()` log to `sys.stderr` (capsys's stream) just as
    the real process does; afterwards the handler it added goes, and every logger's level is restored.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root.handlers.clear()
    try:
        yield
    finally:
        for added in root.handlers:
            added.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))

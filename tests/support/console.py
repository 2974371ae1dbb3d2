"""Shared by several test modules."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

from adapters.console import ConsoleChat
from bot.app import Bot
from tests.fakes.queue_common import image_info


def console_in(tmp_path: Path) -> tuple[list[ConsoleChat], io.StringIO, Callable[[Bot], ConsoleChat]]:
    """A console chat for a BotHarness, reading no standard input: the test hands it lines."""
    made: list[ConsoleChat] = []
    err = io.StringIO()

    def factory(bot: Bot) -> ConsoleChat:
        made.append(ConsoleChat(bot.engine, tmp_path / "out", runner=bot.runner, out=io.StringIO(), err=err))
        return made[0]

    return made, err, factory


async def say(chat: ConsoleChat, *lines: str) -> None:
    for line in lines:
        await chat.handle(line)
        await chat.runner.wait_idle()


KEYS = {"pixazo": "pixazo-e2e-key", "atlascloud": "atlas-e2e-key"}


class Console:
    """A console chat whose output the test reads."""

    def __init__(self, tmp_path: Path) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.output_dir = tmp_path / "out"
        self.chat: ConsoleChat | None = None

    def factory(self, bot: Bot) -> ConsoleChat:
        self.chat = ConsoleChat(bot.engine, self.output_dir, runner=bot.runner, out=self.out, err=self.err)
        return self.chat

    async def run(self, bot: Bot, line: str) -> list[Path]:
        """Type one line, wait for every job to finish; the image files it wrote."""
        assert self.chat is not None
        before = len(self.out.getvalue().split())
        await self.chat.handle(line)
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        return [Path(p) for p in self.out.getvalue().split()[before:]]


def formats(paths: list[Path]) -> list[tuple[str, int, int]]:
    return [image_info(p.read_bytes()) for p in paths]

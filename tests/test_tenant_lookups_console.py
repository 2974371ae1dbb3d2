"""The console: a job id (whole or its start) that names another tenant's job in the same store is
answered exactly as an id that names nothing; nothing is sent to the provider or charged."""

from __future__ import annotations

import io
from pathlib import Path

from adapters.console import ConsoleChat
from bot.app import Bot
from bot.model.jobs import Job
from bot.model.requests import ChatRequest, parse_command
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor
from tests.support.harness import BotHarness, sandbox_of
from tests.support.jobs import NOW, make_job

NOBODY = "0123456789abcdef0123456789abcdef"


async def made_elsewhere(bot: Bot, surface: str, workspace: str) -> Job:
    chat = ChatRequest(
        surface=surface,
        user_id="someone",
        workspace_id=workspace,
        request=parse_command("a secret blueprint").request,
    )
    job = await bot.engine.submit(chat)
    finished = await bot.runner.wait_job(job.id)
    assert finished is not None and finished.result_media
    return finished


async def test_another_tenants_job_id_is_not_found_on_the_console(tmp_path: Path) -> None:
    made: list[ConsoleChat] = []
    err = io.StringIO()

    def factory(bot: Bot) -> ConsoleChat:
        made.append(ConsoleChat(bot.engine, tmp_path / "out", out=io.StringIO(), err=err, runner=bot.runner))
        return made[0]

    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        chat = made[0]
        # Another console tenant and another surface's server, in the same store.
        others = [await made_elsewhere(bot, "console", "elsewhere"), await made_elsewhere(bot, "test", "w9")]
        submits = sandbox_of(bot).submits
        used = (await bot.engine.quota("console", "local", "local")).used

        async def answer(line: str) -> str:
            start = len(err.getvalue())
            await chat.handle(line)
            await bot.runner.wait_idle()
            return err.getvalue()[start:]

        commands = ("/edit {} make it blue", "/vary {}", "/undo {}", "/history {}", "/subject save plan {}")
        for template in commands:
            expected = await answer(template.format(NOBODY))
            assert "neither an image file nor a finished job" in expected
            for other in others:
                for key in (other.id, other.id[:8]):
                    told = await answer(template.format(key))
                    assert told == expected.replace(NOBODY, key), (template, key)
        assert sandbox_of(bot).submits == submits
        assert (await bot.engine.quota("console", "local", "local")).used == used
        assert await bot.engine.subjects.all(bot.engine.tenant("console", "local", "local")) == []
        assert chat.failures == len(commands) * (1 + 2 * len(others))


async def test_a_job_id_start_finds_the_askers_own_job_behind_another_tenants_newer_one(
    tmp_path: Path,
) -> None:
    async with BotHarness(tmp_path) as bot:

        async def admit(job_id: str, workspace: str, at: float) -> Job:
            job = make_job(job_id=job_id)
            job.surface, job.user_id, job.workspace_id, job.created_at = "console", "local", workspace, at
            return await bot.engine.store.admit(job, workspace_key=f"console:{workspace}", dedup_key=None)

        own = await admit("ab12" + "0" * 28, "local", NOW)
        newer = await admit("ab12" + "1" * 28, "elsewhere", NOW + 60)
        lookup = Lookup(bot.engine)
        asker = Actor(surface="console", workspace_id="local", user_id="local")
        found = await lookup.job_by_key(asker, "ab12")
        assert found is not None and found.id == own.id
        other = Actor(surface="console", workspace_id="elsewhere", user_id="local")
        assert (await lookup.job_by_key(other, "ab12")).id == newer.id  # type: ignore[union-attr]
        assert (
            await lookup.job_by_key(Actor(surface="console", workspace_id="third", user_id="local"), "ab12")
            is None
        )

"""Versions on the console against the sandbox provider: a chain of /edit is one thread; /undo makes
the version before the one `/edit last` edits; /history lists the chain; /vary sends the image as a
reference with the same prompt and a new seed."""

from __future__ import annotations

from pathlib import Path

from tests.support.console import console_in, say
from tests.support.harness import BotHarness, sandbox_of


async def test_undo_then_edit_continues_from_the_previous_version(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        chat = made[0]
        await say(chat, "/undo")
        assert "There is no finished image yet" in err.getvalue()
        await say(chat, "/hidream a castle --seed 1")
        first = await bot.engine.job(chat.last_job_id or "")
        assert first is not None
        await say(chat, "/undo")
        assert "v1, the first version" in err.getvalue()
        await say(chat, "/edit last make it night", "/history")
        second = await bot.engine.job(chat.last_job_id or "")
        assert second is not None and second.parent_job_id == first.id
        text = err.getvalue()
        assert "v1: a castle" in text and "v2: make it night" in text and "← current" in text
        assert f"{first.id}-1.png" in text  # where v1's file is

        await say(chat, "/undo", "/edit last add snow")
        third = await bot.engine.job(chat.last_job_id or "")
        assert third is not None and third.parent_job_id == first.id
        assert "Back to v1 (from v2): a castle" in err.getvalue()
        v1_image = (await bot.engine.result_images(first))[0].data
        (received,) = [j for j in sandbox_of(bot).received() if j.prompt == "add snow"]
        assert received.references == [v1_image]
        history = await bot.engine.versions.history("console", first.id)
        assert [v.job.id for v in history.versions] == [first.id, second.id, third.id]

        await say(chat, f"/vary {second.id[:8]}")
        varied = await bot.engine.job(chat.last_job_id or "")
        assert varied is not None and varied.parent_job_id == second.id
        assert varied.request.prompt == "make it night" and varied.seed != second.seed
        v2_image = (await bot.engine.result_images(second))[0].data
        (sent,) = [j for j in sandbox_of(bot).received() if j.seed == varied.seed]
        assert sent.prompt == "make it night" and sent.references == [v2_image]

"""The toolbox at the console against the sandbox: each of /zoom 1.5|2, /pan left|right|up|down and
/square sends a canvas with the original's pixels unchanged where they belong, the result takes the
canvas's shape and is the next version of the image's chain; /upscale asks for 2048 pixels on the long
side on the full model; an edit and /vary keep a 16:9 image 16:9; a bad command says how to write it."""

from __future__ import annotations

from pathlib import Path

from tests.support.console import Console, formats
from tests.support.harness import BotHarness, sandbox_of
from tests.support.toolbox import CANVAS_KINDS, CONSOLE, check_canvas, check_follows, rgb


async def test_each_tool_at_the_console(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        made = await console.run(bot, "/hidream a lighthouse on a cliff --ar 16:9 --seed 4")
        assert formats(made) == [("PNG", 1360, 768)], console.err.getvalue()
        assert console.chat is not None and console.chat.last_job_id is not None
        source = await bot.engine.job(console.chat.last_job_id)
        assert source is not None
        original = made[0].read_bytes()
        key = source.id[:8]

        # An edit and a Vary (Subtle) of a 16:9 image keep 16:9, sized by the image.
        for line in (f"/edit {key} make it night", f"/vary {key}"):
            (edited,) = await console.run(bot, line)
            sent = sandbox_of(bot).received()[-1]
            assert sent.keep_original_aspect and (sent.width, sent.height) == (1360, 768), line
            assert rgb(edited.read_bytes()).size == (1360, 768), line

        for kind in CANVAS_KINDS:
            before = sandbox_of(bot).submits
            (result,) = await console.run(bot, f"{CONSOLE[kind]} {key}")
            assert sandbox_of(bot).submits == before + 1, console.err.getvalue()
            sent = sandbox_of(bot).received()[-1]
            assert len(sent.references) == 1 and sent.keep_original_aspect
            shape = check_canvas(kind, original, sent.references[0])
            job = await bot.engine.job(console.chat.last_job_id)
            assert job is not None and job.parent_job_id == source.id and job.mode == "edit"
            check_follows(job, result.read_bytes(), shape)
            assert "Do not change anything in the existing picture" in sent.prompt
            assert sent.prompt.endswith("The scene: a lighthouse on a cliff")

        (upscaled,) = await console.run(bot, f"/upscale {key}")
        sent = sandbox_of(bot).received()[-1]
        assert (sent.width, sent.height, sent.model) == (2048, 1152, "full")
        assert sent.references == [(await bot.engine.result_images(source))[0].data]
        assert rgb(upscaled.read_bytes()).size == (2048, 1152)

        # Every tool's result is a version of the one chain.
        thread = await bot.engine.versions.thread_of("console", source.id)
        assert thread is not None
        assert len(await bot.engine.versions.live("console", thread)) == 1 + 2 + len(CANVAS_KINDS) + 1

        before = sandbox_of(bot).submits
        for bad, usage in (
            (f"/zoom 3 {key}", "/zoom 1.5|2"),
            (f"/pan sideways {key}", "/pan left|right|up|down"),
            ("/square", "/square <job id | last>"),
            ("/upscale a b", "/upscale <job id | last>"),
        ):
            assert await console.run(bot, bad) == []
            assert usage in console.err.getvalue().splitlines()[-1], bad
        assert sandbox_of(bot).submits == before


async def test_a_canvas_too_narrow_is_refused_before_any_call(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        await console.run(bot, "/hidream a long train --ar 4:1")
        before = sandbox_of(bot).submits
        assert await console.run(bot, "/pan right last") == []
        assert "narrower than the 1:4 to 4:1" in console.err.getvalue()
        assert sandbox_of(bot).submits == before
        quota = await bot.engine.quota("console", "local", "local")
        assert quota.used == 1  # only the first image counted

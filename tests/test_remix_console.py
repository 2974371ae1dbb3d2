"""Remix at the console against the sandbox: `/remix <job>` alone prints the request as typed;
`/remix <job> <text>` sends the changed prompt and flags with the result's image as the one reference
(in its shape), or with none under `--fresh`; each is the next version of the result's chain. A bad
flag is refused with nothing spent, and another tenant's job is not found."""

from __future__ import annotations

from pathlib import Path

from bot.model.requests import ChatRequest, ImageRequest
from bot.usecases.actor import Actor
from bot.usecases.make import make
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of
from tests.support.toolbox import rgb


async def test_remix_keeps_the_image_or_starts_afresh_in_the_same_chain(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        (made,) = await console.run(bot, "/hidream a red fox in snow --ar 16:9 --seed 7 --steps 20")
        assert console.chat is not None and console.chat.last_job_id is not None
        source = await bot.engine.job(console.chat.last_job_id)
        assert source is not None
        key = source.id[:8]

        # Alone, it shows the request as typed: the prompt and the flags, ready to change.
        assert await console.run(bot, f"/remix {key}") == []
        line = console.err.getvalue().splitlines()[-1]
        assert line.endswith(f"/remix {key} a red fox in snow --ar 16:9 --seed 7 --steps 20"), line

        # Kept: an edit whose one reference is the result's image, in its shape, with the new text.
        (kept,) = await console.run(bot, f"/remix {key} a blue fox in snow --ar 16:9 --seed 9")
        sent = sandbox_of(bot).received()[-1]
        assert sent.prompt == "a blue fox in snow" and sent.seed == 9
        assert sent.references == [made.read_bytes()]
        assert rgb(kept.read_bytes()).size == (1360, 768)
        first = await bot.engine.job(console.chat.last_job_id)
        assert first is not None and first.parent_job_id == source.id and first.mode == "edit"
        assert f"accepted: a remix of {key} from its image, seed 9" in console.err.getvalue()

        # --fresh: a new image from the text alone, still in the chain.
        await console.run(bot, f"/remix {key} a blue fox in rain --seed 3 --fresh --n 2")
        sent = sandbox_of(bot).received()[-1]
        assert (sent.prompt, sent.seed, sent.num_images, sent.references) == ("a blue fox in rain", 3, 2, [])
        assert f"accepted: a remix of {key} from the text alone, seed 3" in console.err.getvalue()
        fresh = await bot.engine.job(console.chat.last_job_id)
        assert fresh is not None and fresh.parent_job_id == source.id and fresh.mode != "edit"
        thread = await bot.engine.versions.thread_of("console", source.id)
        assert thread is not None
        live = await bot.engine.versions.live("console", thread)
        assert [v.job.id for v in live][-2:] == [first.id, fresh.id]


async def test_bad_flags_and_another_tenants_job_are_refused_with_nothing_spent(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        await console.run(bot, "/hidream a lighthouse --seed 4")
        assert console.chat is not None
        used = (await bot.engine.quota("console", "local", "local")).used
        before = sandbox_of(bot).submits
        for line, said in (
            ("/remix last a lighthouse --seed many", "--seed many is not a whole number"),
            ("/remix last a lighthouse --colour red", "--colour is not a known flag"),
            ("/remix last --seed 3", "The prompt is empty"),
            ("/remix last a lighthouse --repeat 3", "leave out --repeat"),
            ("/remix", "Usage: /remix <job id | last>"),
        ):
            assert await console.run(bot, line) == []
            assert said in console.err.getvalue().splitlines()[-1], line

        # Someone else's job, in another tenant, named by its whole id.
        other = Actor(surface="console", workspace_id="elsewhere", user_id="someone")
        theirs = await make(
            bot.engine,
            other,
            ChatRequest(surface="console", user_id="x", request=ImageRequest(prompt="a cat")),
        )
        await bot.runner.wait_idle()
        before_theirs = sandbox_of(bot).submits
        assert await console.run(bot, f"/remix {theirs.id} a dog") == []
        assert f"{theirs.id}" in console.err.getvalue().splitlines()[-1]
        assert sandbox_of(bot).submits == before_theirs == before + 1
        assert (await bot.engine.quota("console", "local", "local")).used == used

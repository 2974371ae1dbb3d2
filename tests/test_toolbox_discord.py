"""The toolbox's buttons on Discord against the fake and the sandbox: each of Zoom Out 1.5x and 2x,
Pan ⬅ ➡ ⬆ ⬇ and Make Square sends a canvas with the original's pixels unchanged where they belong and
posts a result of the canvas's shape; Upscale asks for 2048 pixels on the long side on the full model;
Vary (Strong) makes a new image of the same prompt with a new seed; each is a version of the thread."""

from __future__ import annotations

from pathlib import Path

from bot.usecases.actions import Kind
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot
from tests.support.discord import new_result_in, slash_result
from tests.support.harness import sandbox_of
from tests.support.toolbox import CANVAS_KINDS, check_canvas, check_follows, rgb


async def test_each_tool_button(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, source = await slash_result(fake, bot, "a lighthouse on a cliff --ar 16:9")
        original = (await bot.engine.result_images(source))[0].data
        assert rgb(original).size == (1360, 768)

        async def press(kind: Kind) -> tuple[bytes, object]:
            custom_id = f"hidream:{kind.value}:{source.id}"
            assert custom_id in custom_ids(result)
            before = set(fake.messages)
            click = await fake.interact(fake.click_payload(result, custom_id))
            _, job = await new_result_in(fake, bot, before)
            assert fake.acks[click["id"]][0] == 5  # deferred: acknowledged before any provider work
            assert job.parent_job_id == source.id
            # Counted under the channel its button was pressed in (cost by channel, approvals).
            assert job.channel and job.channel == str(result["channel_id"])
            return (await bot.engine.result_images(job))[0].data, job

        for kind in CANVAS_KINDS:
            image, job = await press(kind)
            sent = sandbox_of(bot).received()[-1]
            assert len(sent.references) == 1 and sent.keep_original_aspect, kind
            check_follows(job, image, check_canvas(kind, original, sent.references[0]))  # type: ignore[arg-type]

        image, job = await press(Kind.UPSCALE)
        sent = sandbox_of(bot).received()[-1]
        assert (sent.width, sent.height, sent.model) == (2048, 1152, "full")
        assert sent.references == [original] and rgb(image).size == (2048, 1152)

        _, strong = await press(Kind.VARY_STRONG)
        sent = sandbox_of(bot).received()[-1]
        assert sent.prompt == "a lighthouse on a cliff" and sent.references == []
        assert strong.seed != source.seed  # type: ignore[attr-defined]

        thread = await bot.engine.versions.thread_of("discord", source.id)
        assert thread is not None
        assert len(await bot.engine.versions.live("discord", thread)) == 1 + len(CANVAS_KINDS) + 2

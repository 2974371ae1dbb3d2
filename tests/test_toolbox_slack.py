"""The toolbox on Slack against the fake and the sandbox: the Zoom Out, Make Square and Upscale buttons,
the four Pans from the overflow menu, and Vary (Strong). Each canvas is the expected size with the
original's pixels unchanged where they belong, each result takes its shape and lands in the result's
thread as its next version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack.blocks import ACTION_IDS, OVERFLOW
from adapters.slack.translate import ACTION_MORE
from bot.model.jobs import Job
from bot.usecases.actions import Kind
from tests.fakes.slack import FakeSlack
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, command_to_result, job_id_of, running, summaries
from tests.support.toolbox import CANVAS_KINDS, check_canvas, check_follows, rgb


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_each_tool_from_buttons_and_the_overflow_menu(tmp_path: Path, fake: FakeSlack) -> None:
    async with running(tmp_path, fake, "http") as run:
        summary = await command_to_result(run, "a lighthouse on a cliff --ar 16:9")
        await run.bot.runner.wait_idle()
        source = await run.bot.engine.job(job_id_of(summary))
        assert source is not None
        original = (await run.bot.engine.result_images(source))[0].data
        assert rgb(original).size == (1360, 768)

        async def press(kind: Kind) -> tuple[bytes, Job]:
            count = len(summaries(fake))
            action = ACTION_IDS[kind]
            if kind in OVERFLOW:
                payload = fake.overflow(summary, CHANNEL, ACTION_MORE, f"{action}:{source.id}")
            else:
                payload = fake.button(summary, CHANNEL, action)
            await run.send.interaction(payload)
            made = (await fake.wait_for(lambda: summaries(fake)[count:]))[0]
            await run.bot.runner.wait_idle()
            job = await run.bot.engine.job(job_id_of(made))
            assert job is not None and job.parent_job_id == source.id
            assert job.origin["thread_ts"] == summary["thread_ts"]
            return (await run.bot.engine.result_images(job))[0].data, job

        for kind in CANVAS_KINDS:
            image, job = await press(kind)
            sent = sandbox_of(run.bot).received()[-1]
            assert len(sent.references) == 1 and sent.keep_original_aspect, kind
            check_follows(job, image, check_canvas(kind, original, sent.references[0]))

        image, job = await press(Kind.UPSCALE)
        sent = sandbox_of(run.bot).received()[-1]
        assert (sent.width, sent.height, sent.model) == (2048, 1152, "full")
        assert sent.references == [original] and rgb(image).size == (2048, 1152)

        _, strong = await press(Kind.VARY_STRONG)
        sent = sandbox_of(run.bot).received()[-1]
        assert sent.prompt == "a lighthouse on a cliff" and sent.references == []
        assert strong.seed != source.seed

        thread = f"{CHANNEL}:{summary['thread_ts']}"
        assert len(await run.bot.engine.versions.live("slack", thread)) == 1 + len(CANVAS_KINDS) + 2

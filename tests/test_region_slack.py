"""Edit region on Slack against the fake and the sandbox: the overflow menu's Edit region gives its
presser, the image's requester, the editor's link privately (chat.postEphemeral to them alone);
anyone else is told it is not theirs; the form sent from the link posts the region's result in the
image's thread as its next version, every pixel outside the rectangle the original's."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack.blocks import ACTION_IDS, OVERFLOW
from adapters.slack.translate import ACTION_MORE
from bot import words
from bot.usecases.actions import Kind
from tests.fakes.slack import FakeSlack
from tests.support.region import LINK_RE, check_blended, link_in, send_form
from tests.support.slack_support import CHANNEL, command_to_result, job_id_of, running, summaries

AREA = (300, 150, 700, 450)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_the_overflow_option_the_link_and_the_result_in_the_thread(
    tmp_path: Path, fake: FakeSlack
) -> None:
    async with running(tmp_path, fake, "http") as run:
        summary = await command_to_result(run, "a lighthouse on a cliff --ar 16:9")
        await run.bot.runner.wait_idle()
        source = await run.bot.engine.job(job_id_of(summary))
        assert source is not None
        original = (await run.bot.engine.result_images(source))[0].data
        assert Kind.REGION in OVERFLOW
        option = f"{ACTION_IDS[Kind.REGION]}:{source.id}"

        await run.send.interaction(fake.overflow(summary, CHANNEL, ACTION_MORE, option))
        (told,) = await fake.wait_for(
            lambda: [e for e in fake.ephemerals if LINK_RE.search(str(e.get("text")))]
        )
        assert told["user"] == "UALICE01" and told["channel"] == CHANNEL
        link = link_in(str(told["text"]))
        assert link.startswith(run.bot.server_url + "/edit/")

        # Someone else: not theirs, and no link.
        await run.send.interaction(fake.overflow(summary, CHANNEL, ACTION_MORE, option, user="UBOB0002"))
        await fake.wait_for(lambda: [e for e in fake.ephemerals if e.get("text") == words.REGION_NOT_YOURS])
        assert [e["user"] for e in fake.ephemerals if LINK_RE.search(str(e.get("text")))] == ["UALICE01"]

        count = len(summaries(fake))
        sent = await send_form(link, AREA, "a red door")
        assert sent.status_code == 200 and words.REGION_ACCEPTED in html.unescape(sent.text)
        made = (await fake.wait_for(lambda: summaries(fake)[count:]))[0]
        await run.bot.runner.wait_idle()
        job = await run.bot.engine.job(job_id_of(made))
        assert job is not None and job.parent_job_id == source.id and job.request.region is not None
        assert made["thread_ts"] == summary["thread_ts"] and job.origin["thread_ts"] == summary["thread_ts"]
        thread = f"{CHANNEL}:{summary['thread_ts']}"
        assert (await run.bot.engine.versions.current("slack", thread)) == job
        result = (await run.bot.engine.result_images(job))[0].data
    assert check_blended(original, result, AREA) > 0.9

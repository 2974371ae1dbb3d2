"""Sets and drafts on Slack: the real slack-bolt against the loopback FakeSlack, the bot's provider the
Pixazo fake. `{a, b}` choices make one result per combination in one thread; at a quota of 2 a set of
3 sends nothing; a set of more than 4 waits for its requester's button; a draft's Final button renders
it on the full model with the same seed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from adapters.slack.translate import ACTION_CONFIRM_SET, ACTION_FINAL
from tests.fakes.pixazo import PixazoFake
from tests.fakes.slack import FakeSlack
from tests.support.slack_support import CHANNEL, Running, job_id_of, roots, running, summaries


@asynccontextmanager
async def slack_with_pixazo(tmp_path: Path, **env: Any) -> AsyncIterator[tuple[Running, PixazoFake]]:
    pixazo = PixazoFake(api_key="pixazo-key")
    async with pixazo.running(), FakeSlack() as fake:
        settings = {
            "HIDREAM_PROVIDER": "pixazo",
            "PIXAZO_API_KEY": "pixazo-key",
            "PIXAZO_BASE_URL": pixazo.url,
        }
        async with running(tmp_path, fake, "socket", **settings, **env) as run:
            run.bot.provider.poll_interval = 0.01
            yield run, pixazo


def confirmation(fake: FakeSlack) -> dict[str, Any] | None:
    for response in fake.responses:
        for block in response.get("blocks") or []:
            if any(e.get("action_id") == ACTION_CONFIRM_SET for e in block.get("elements") or []):
                return {**response, "ts": "1700000000.000001"}
    return None


async def test_choices_make_one_result_per_combination_in_one_thread(tmp_path: Path) -> None:
    async with slack_with_pixazo(tmp_path) as (run, pixazo):
        assert await run.send.command(run.fake.slash("a {red, green, blue} fox --seed 4")) == 200
        found = await run.fake.wait_for(lambda: len(summaries(run.fake)) == 3 and summaries(run.fake))
        await run.bot.runner.wait_idle()
        assert sorted(s.json()["prompt"] for s in pixazo.submits) == [
            "a blue fox",
            "a green fox",
            "a red fox",
        ]
        # One thread: the first status is its root, every result is posted in it.
        (root,) = roots(run.fake)
        assert {m["thread_ts"] for m in found} == {root["ts"]}
        jobs = [await run.bot.engine.job(job_id_of(m)) for m in found]
        assert sorted(j.request.prompt for j in jobs if j is not None) == [
            "a blue fox",
            "a green fox",
            "a red fox",
        ]


async def test_a_set_of_three_at_a_quota_of_two_sends_nothing(tmp_path: Path) -> None:
    async with slack_with_pixazo(tmp_path, HIDREAM_DAILY_IMAGE_QUOTA=2) as (run, pixazo):
        assert await run.send.command(run.fake.slash("a {red, green, blue} fox")) == 200
        said = await run.fake.wait_for(lambda: [r for r in run.fake.responses if "left today" in str(r)])
        assert "That asks for 3 images but you have 2 of 2 left today" in str(said[0])
        await run.bot.runner.wait_idle()
        assert pixazo.submits == [] and summaries(run.fake) == []
        # Its status messages were taken down again.
        assert [m for m in roots(run.fake) if not m.get("deleted")] == []
        status = await run.bot.engine.quota("slack", "UALICE01", "T0001")
        assert (status.used, status.remaining) == (0, 2)


async def test_a_set_of_more_than_four_waits_for_its_requesters_button(tmp_path: Path) -> None:
    async with slack_with_pixazo(tmp_path) as (run, pixazo):
        assert await run.send.command(run.fake.slash("a lighthouse --repeat 5 --seed 20")) == 200
        asked = await run.fake.wait_for(lambda: confirmation(run.fake))
        assert "This makes 5 images for about $0.05" in asked["text"]
        assert pixazo.submits == [] and summaries(run.fake) == []

        await run.send.interaction(run.fake.button(asked, CHANNEL, ACTION_CONFIRM_SET, user="UBOB0001"))
        await run.fake.wait_for(
            lambda: any("Only the person who asked" in str(e) for e in run.fake.ephemerals)
        )
        assert pixazo.submits == []

        await run.send.interaction(run.fake.button(asked, CHANNEL, ACTION_CONFIRM_SET))
        await run.fake.wait_for(lambda: len(summaries(run.fake)) == 5)
        await run.bot.runner.wait_idle()
        assert sorted(s.json()["seed"] for s in pixazo.submits) == [20, 21, 22, 23, 24]

        await run.send.interaction(run.fake.button(asked, CHANNEL, ACTION_CONFIRM_SET))
        await run.fake.wait_for(lambda: any("no longer waiting" in str(e) for e in run.fake.ephemerals))
        await run.bot.runner.wait_idle()
        assert len(pixazo.submits) == 5


async def test_a_drafts_final_button_renders_it_on_the_full_model_with_the_same_seed(tmp_path: Path) -> None:
    async with slack_with_pixazo(tmp_path) as (run, pixazo):
        assert await run.send.command(run.fake.slash("a red fox in snow --draft --size 1024x768")) == 200
        (draft_msg,) = await run.fake.wait_for(lambda: summaries(run.fake))
        await run.bot.runner.wait_idle()
        draft = await run.bot.engine.job(job_id_of(draft_msg))
        assert draft is not None and draft.tier == "dev"
        assert pixazo.submits[-1].path == "/hidream-o1-image-dev/v1/hidream-o1-image-dev-request"

        await run.send.interaction(run.fake.button(draft_msg, CHANNEL, ACTION_FINAL))
        found = await run.fake.wait_for(lambda: len(summaries(run.fake)) == 2 and summaries(run.fake))
        await run.bot.runner.wait_idle()
        final = await run.bot.engine.job(job_id_of(found[-1]))
        assert final is not None and final.tier == "full" and final.parent_job_id == draft.id
        sent = pixazo.submits[-1]
        assert sent.path == "/hidream-o1-image/v1/hidream-o1-image-request"
        assert sent.json()["seed"] == draft.seed == final.seed
        assert sent.json()["image_size"] == {"width": 1024, "height": 768}
        # In the draft's thread; a result that is no draft offers no Final.
        assert found[-1]["thread_ts"] == draft_msg["thread_ts"]
        actions = [
            e["action_id"] for b in found[-1]["blocks"] for e in b.get("elements") or [] if "action_id" in e
        ]
        assert ACTION_FINAL not in actions

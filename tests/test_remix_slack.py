"""Remix on Slack against the fake and the sandbox: the button opens a dialog (views.open with the
press's trigger_id) whose text field holds the prompt and its flags and whose "keep the image" box
is ticked; the submission makes the next version in the result's thread, with the result's image as
the one reference when kept and none when not. A bad flag is shown in the dialog (`response_action:
errors`) with nothing spent; another workspace's job is not found."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.translate import ACTION_REMIX, BLOCK_INSTRUCTION, BLOCK_KEEP, VIEW_REMIX
from bot.words import NOT_FOUND
from tests.fakes.slack import FakeSlack
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, HttpSender, command_to_result, job_id_of, running, summaries
from tests.support.toolbox import rgb

OTHER_TEAM = "T_OTHER"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


def filled(view: dict[str, Any], text: str, keep: bool) -> dict[str, Any]:
    """The dialog's state as Slack sends it back: the text typed, the box ticked or not."""
    [box] = [b["element"] for b in view["blocks"] if b["block_id"] == BLOCK_KEEP]
    return {
        BLOCK_INSTRUCTION: {"text": {"type": "plain_text_input", "value": text}},
        BLOCK_KEEP: {
            box["action_id"]: {"type": "checkboxes", "selected_options": box["options"] if keep else []}
        },
    }


async def test_the_remix_dialog_is_filled_in_and_remixes_in_the_thread(
    tmp_path: Path, fake: FakeSlack
) -> None:
    async with running(tmp_path, fake, "http") as run:
        summary = await command_to_result(run, "a lighthouse on a cliff --ar 16:9 --seed 5 --cfg 4.5")
        await run.bot.runner.wait_idle()
        source = await run.bot.engine.job(job_id_of(summary))
        assert source is not None
        original = (await run.bot.engine.result_images(source))[0].data

        await run.send.interaction(fake.button(summary, CHANNEL, ACTION_REMIX))
        view = (await fake.wait_for(lambda: fake.views))[-1]
        assert view["callback_id"] == VIEW_REMIX and fake.called("views.open")[-1]["trigger_id"]
        [text] = [b["element"] for b in view["blocks"] if b["block_id"] == BLOCK_INSTRUCTION]
        assert (
            text["multiline"]
            and text["initial_value"] == "a lighthouse on a cliff --ar 16:9 --seed 5 --cfg 4.5"
        )
        [box] = [b["element"] for b in view["blocks"] if b["block_id"] == BLOCK_KEEP]
        assert box["type"] == "checkboxes" and box["initial_options"] == box["options"]
        assert json.loads(view["private_metadata"])["job_id"] == source.id

        async def send(text: str, keep: bool) -> tuple[Any, Any]:
            # Each remix from its own dialog (Slack sends one view back once).
            opened = len(fake.views)
            await run.send.interaction(fake.button(summary, CHANNEL, ACTION_REMIX))
            view = (await fake.wait_for(lambda: fake.views[opened:]))[0]
            count = len(summaries(fake))
            await run.send.interaction(fake.submission(view, filled(view, text, keep)))
            made = (await fake.wait_for(lambda: summaries(fake)[count:]))[0]
            await run.bot.runner.wait_idle()
            job = await run.bot.engine.job(job_id_of(made))
            assert job is not None and job.parent_job_id == source.id
            assert made["thread_ts"] == summary["thread_ts"]
            return sandbox_of(run.bot).received()[-1], job

        sent, kept = await send("a lighthouse in a storm --ar 16:9 --seed 6", True)
        assert (sent.prompt, sent.seed, sent.references) == ("a lighthouse in a storm", 6, [original])
        assert kept.mode == "edit"
        assert rgb((await run.bot.engine.result_images(kept))[0].data).size == (1360, 768)

        sent, fresh = await send("a lighthouse in a storm --seed 6 --n 2", False)
        assert (sent.prompt, sent.seed, sent.num_images, sent.references) == (
            "a lighthouse in a storm",
            6,
            2,
            [],
        )
        assert fresh.mode != "edit"

        thread = f"{CHANNEL}:{summary['thread_ts']}"
        live = await run.bot.engine.versions.live("slack", thread)
        assert [v.job.id for v in live] == [source.id, kept.id, fresh.id]


async def test_a_bad_flag_stays_in_the_dialog_and_another_workspaces_job_is_not_found(
    tmp_path: Path, fake: FakeSlack
) -> None:
    async with running(tmp_path, fake, "http") as run:
        first = await command_to_result(run, "a red barn --seed 1")
        second = await command_to_result(run, "a blue barn --seed 2")
        await run.bot.runner.wait_idle()
        submits = sandbox_of(run.bot).submits
        used = (await run.bot.engine.quota("slack", "UALICE01", fake.slash("x")["team_id"])).used

        await run.send.interaction(fake.button(second, CHANNEL, ACTION_REMIX))
        view = (await fake.wait_for(lambda: fake.views))[-1]
        assert isinstance(run.send, HttpSender)
        payload = fake.submission(view, filled(view, "a blue barn --seed lots", True))
        answer = await run.send.post(
            urllib.parse.urlencode({"payload": json.dumps(payload)}).encode(),
            "application/x-www-form-urlencoded",
        )
        assert answer.status_code == 200
        refusal = answer.json()
        assert refusal["response_action"] == "errors"
        assert "`--seed lots` is not a whole number" in refusal["errors"][BLOCK_INSTRUCTION]

        # The first result's job named from under the second, by someone of another workspace.
        forged = {**view, "private_metadata": json.dumps({**json.loads(view["private_metadata"]),
                                                          "job_id": job_id_of(first)})}  # fmt: skip
        theirs = fake.submission(forged, filled(view, "a green barn", True), user="UBOB0001")
        theirs.update(team={"id": OTHER_TEAM}, user={**theirs["user"], "team_id": OTHER_TEAM})
        await run.send.interaction(theirs)
        told = await fake.wait_for(lambda: [e for e in fake.ephemerals if e.get("user") == "UBOB0001"])
        assert told[0]["text"] == NOT_FOUND

        await run.bot.runner.wait_idle()
        assert sandbox_of(run.bot).submits == submits
        assert len(summaries(fake)) == 2
        assert (await run.bot.engine.quota("slack", "UALICE01", fake.slash("x")["team_id"])).used == used
        assert (await run.bot.engine.quota("slack", "UBOB0001", OTHER_TEAM)).used == 0

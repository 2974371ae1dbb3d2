"""Several providers on Slack end to end (real bolt in HTTP mode against the loopback Slack fake), with
HIDREAM_PROVIDERS=pixazo,sandbox and the Pixazo fake out of credit: the sandbox makes the image and the
result's context line names it; an unconfigured `--provider` is refused with nothing made."""

from __future__ import annotations

from pathlib import Path

from bot.model.jobs import JobState
from bot.providers.sandbox.provider import SandboxProvider
from tests.fakes.pixazo import PixazoFake
from tests.fakes.slack import FakeSlack
from tests.support.slack_support import job_id_of, running, summaries

KEY = "pixazo-slack-key"


async def test_a_refused_submit_is_made_elsewhere_and_the_result_names_the_maker(tmp_path: Path) -> None:
    async with PixazoFake(api_key=KEY).running() as pixazo, FakeSlack() as fake:
        env = {"HIDREAM_PROVIDERS": "pixazo,sandbox", "PIXAZO_API_KEY": KEY, "PIXAZO_BASE_URL": pixazo.url}
        async with running(tmp_path, fake, "http", **env) as run:
            sandbox = run.bot.engine.providers["sandbox"]
            assert isinstance(sandbox, SandboxProvider) and sandbox.service is not None

            pixazo.fail_next(402)
            assert await run.send.command(fake.slash("a red fox in snow --seed 7")) == 200
            [summary] = await fake.wait_for(lambda: summaries(fake))
            await run.bot.runner.wait_idle()
            job = await run.bot.engine.job(job_id_of(summary))
            assert job is not None and (job.state, job.provider) == (JobState.DELIVERED, "sandbox")
            context = next(b for b in summary["blocks"] if b["type"] == "context")
            assert context["elements"][0]["text"].endswith("· sandbox")
            assert (len(pixazo.submits), sandbox.service.submits) == (1, 1)

            assert await run.send.command(fake.slash("a blue fox --provider fal")) == 200
            await fake.wait_for(lambda: [r for r in fake.responses if "--provider fal" in r["text"]])
            [refusal] = [r for r in fake.responses if "--provider fal" in r["text"]]
            assert "is not configured here: use pixazo or sandbox" in refusal["text"]
            await run.bot.runner.wait_idle()
            assert len(summaries(fake)) == 1
            assert (len(pixazo.submits), sandbox.service.submits) == (1, 1)

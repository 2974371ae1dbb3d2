"""The runner is the one worker: a provider's callback goes from the server to the runner, with no
`Engine` in the path. A server given the runner alone takes a job's callback and the job is posted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bot.model.jobs import JobState
from bot.web.server import HttpServer
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness, until
from tests.support.holding import chat, holding


async def test_a_server_with_the_runner_and_no_engine_takes_a_callback_to_its_job(tmp_path: Path) -> None:
    surface = RecordingSurface()
    # With an hour's grace and an hour between polls, only a callback makes the job look again.
    harness = BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True, callback_grace=3600)
    async with harness as bot, httpx.AsyncClient() as client:
        provider = holding(bot)
        job = await bot.engine.submit(chat(1))
        await until(lambda: len(provider.held) == 1)
        server = HttpServer("127.0.0.1", 0)
        server.ready(bot.runner, {})
        async with server:
            assert server.engine is None
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
            wrong = await client.post(f"{server.url}/webhooks/not-a-token", content=b"{}")
            assert wrong.status_code == 404
            provider.released.add(f"held-{job.id}")
            answer = await client.post(f"{server.url}/webhooks/{job.callback_token}", content=b"{}")
            assert answer.status_code == 200
            done = await asyncio.wait_for(bot.runner.wait_job(job.id), 30)
        assert done is not None and done.state is JobState.DELIVERED
        assert [job_id for job_id, _ in surface.deliveries] == [job.id]
        assert provider.submits[job.id] == 1

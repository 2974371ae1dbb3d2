"""The whole bot (store, server, engine, console chat) against the Pixazo and Atlas Cloud fakes.

`/hidream` and `/edit` complete by callback, by polling when the callback never comes, and by plain
polling; without a public URL an edit is refused with a message naming HIDREAM_PUBLIC_URL, because
neither provider takes inline images.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.pixazo import PixazoFake
from tests.fakes.queue_common import QueueFake
from tests.support.console import KEYS, Console, formats
from tests.support.harness import BotHarness


@asynccontextmanager
async def provider_fake(name: str) -> AsyncIterator[QueueFake]:
    fake: QueueFake = (
        PixazoFake(api_key=KEYS[name]) if name == "pixazo" else AtlasCloudFake(api_key=KEYS[name])
    )
    async with fake.running():
        yield fake


def env_for(name: str, url: str) -> dict[str, Any]:
    prefix = name.upper()
    return {"HIDREAM_PROVIDER": name, f"{prefix}_API_KEY": KEYS[name], f"{prefix}_BASE_URL": url}


@pytest.mark.parametrize("name", ["pixazo", "atlascloud"])
@pytest.mark.parametrize("delivery", ["callback", "callback-lost"])
async def test_hidream_and_edit_with_public_url(tmp_path, name: str, delivery: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake:
        if delivery == "callback-lost":
            fake.callback_repeats = 0  # the bot must fall back to reading the status itself
            grace = 0.05
        else:
            fake.callback_repeats = 2  # a duplicate: still delivered once
            grace = 3600.0  # no polling before the callback: only the callback can finish the job in time
        harness = BotHarness(
            tmp_path, env_for(name, fake.url), [console.factory], callbacks=True, callback_grace=grace
        )
        async with harness as bot:
            made = await console.run(bot, "/hidream a red fox in snow --n 2 --format jpeg --seed 5")
            assert formats(made) == [("JPEG", 1024, 1024)] * 2, console.err.getvalue()
            assert console.chat is not None and console.chat.last_job_id is not None
            job = await bot.engine.job(console.chat.last_job_id)
            assert job is not None and job.cost_usd == pytest.approx(0.088 if name == "atlascloud" else 0.02)
            first_submit = fake.submits[0]
            hook = first_submit.headers.get("X-Webhook-URL") or first_submit.json().get("webhook_url")
            assert hook is not None and hook.startswith(f"{bot.server_url}/webhooks/")

            # Both images of the last job (`last#all`; `last` alone edits its first) are the references: personalization.
            edited = await console.run(bot, "/edit last#all the same fox in autumn")
            size = (1024, 768) if name == "atlascloud" else (1024, 1024)  # Atlas Cloud's default preset
            assert formats(edited) == [("PNG", *size)], console.err.getvalue()
            refs = fake.submits[-1].json()["reference_image_urls"]
            assert len(refs) == 2 and all(r.startswith(f"{bot.server_url}/media/") for r in refs)

            # One image edited, keeping its shape.
            source = await console.run(bot, "/hidream a tall tower --ar 9:16")
            edited = await console.run(bot, "/edit last at night --keep-aspect")
            assert formats(edited) == [("PNG", *formats(source)[0][1:])], console.err.getvalue()
            assert fake.submits[-1].json()["keep_original_aspect"] is True
            if delivery == "callback":
                # Atlas Cloud's signed callback sent again is a replay, refused (and changes nothing).
                expected = {200, 409} if name == "atlascloud" else {200}
                assert {status for _, status in fake.callbacks_sent} == expected
            else:
                assert fake.callbacks_sent == []
                assert fake.status_calls


@pytest.mark.parametrize("name", ["pixazo", "atlascloud"])
async def test_hidream_by_polling_and_edit_needs_public_url(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with (
        provider_fake(name) as fake,
        BotHarness(tmp_path, env_for(name, fake.url), [console.factory]) as bot,
    ):
        # The documented 3 to 5 s interval would make this test slow, not different.
        bot.provider.poll_interval = 0.01
        made = await console.run(bot, "/hidream a lighthouse --ar 16:9 --format webp")
        assert formats(made) == [("WEBP", 1024, 576) if name == "atlascloud" else ("WEBP", 1360, 768)]
        assert len(fake.status_calls) == 3  # queued, processing, completed
        assert all("X-Webhook-URL" not in s.headers and b"webhook_url" not in s.body for s in fake.submits)

        submits = len(fake.submits)
        assert await console.run(bot, "/edit last make it night") == []
        assert "HIDREAM_PUBLIC_URL" in console.err.getvalue()
        assert len(fake.submits) == submits


@pytest.mark.parametrize("name", ["pixazo", "atlascloud"])
async def test_failed_generation_is_told_and_refunded(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with (
        provider_fake(name) as fake,
        BotHarness(tmp_path, env_for(name, fake.url), [console.factory]) as bot,
    ):
        bot.provider.poll_interval = 0.01
        fake.outcome = "FAILED" if name == "pixazo" else "failed"
        assert await console.run(bot, "/hidream something forbidden") == []
        assert "could not make the image" in console.err.getvalue()
        quota = await bot.engine.quota("console", "local", "local")
        assert (quota.used, quota.remaining) == (0, 25)


@pytest.mark.parametrize("name", ["pixazo", "atlascloud"])
async def test_forged_callbacks_change_nothing(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake:
        harness = BotHarness(tmp_path, env_for(name, fake.url), [console.factory], callbacks=True)
        async with harness as bot:
            made = await console.run(bot, "/hidream a quiet harbour")
            assert console.chat is not None and console.chat.last_job_id is not None
            job = await bot.engine.job(console.chat.last_job_id)
            assert job is not None and len(made) == 1
            hook = f"{bot.server_url}/webhooks/{job.callback_token}"
            foreign = b'{"request_id": "someone-else", "status": "COMPLETED", "data": {"id": "someone-else"}}'
            # Atlas Cloud signs its callbacks: an unsigned one is refused before its body is read.
            refused = 401 if name == "atlascloud" else 400
            async with httpx.AsyncClient() as client:
                assert (await client.post(hook, content=b"not json")).status_code == refused
                assert (await client.post(hook, content=foreign)).status_code == refused
                wrong = f"{bot.server_url}/webhooks/not-a-token"
                assert (await client.post(wrong, content=b"{}")).status_code == 404
            after = await bot.engine.job(job.id)
            assert after is not None and (after.state, after.result_media) == (job.state, job.result_media)
            assert sorted(console.output_dir.iterdir()) == made

"""The whole bot (store, server, engine, console chat) against the fal and WaveSpeed fakes.

`/hidream` and `/edit` complete by signed callback (a duplicate included) and by polling. Both providers
take inline images, so without a public URL an edit still works, its references sent as data URIs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.fakes.fal import FalFake
from tests.fakes.queue_common import QueueFake
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.console import Console, formats
from tests.support.harness import BotHarness


@asynccontextmanager
async def provider_fake(name: str) -> AsyncIterator[QueueFake]:
    fake: QueueFake = FalFake(key="fal-e2e-key") if name == "fal" else WaveSpeedFake(api_key="ws-e2e-key")
    async with fake.running():
        yield fake


def env_for(fake: QueueFake) -> dict[str, Any]:
    if isinstance(fake, FalFake):
        return {
            "HIDREAM_PROVIDER": "fal",
            "FAL_KEY": fake.key,
            "FAL_QUEUE_URL": fake.url,
            "FAL_JWKS_URL": fake.jwks_url,
            "FAL_USER_ID": fake.user_id,
        }
    assert isinstance(fake, WaveSpeedFake)
    return {
        "HIDREAM_PROVIDER": "wavespeed",
        "WAVESPEED_API_KEY": fake.api_key,
        "WAVESPEED_BASE_URL": fake.url,
        "WAVESPEED_WEBHOOK_SECRET": fake.secret,
    }


def references(fake: QueueFake) -> list[str]:
    body = fake.submits[-1].json()
    refs = body.get("reference_image_urls") or body.get("images")
    assert isinstance(refs, list)
    return refs


# What a two-image `/hidream` with no size makes: fal's square_hd; WaveSpeed's smallest valid square.
SQUARE = {"fal": (1024, 1024), "wavespeed": (1920, 1920)}
COST = {"fal": 0.005 * 2, "wavespeed": 0.04 * 2}


@pytest.mark.parametrize("name", ["fal", "wavespeed"])
async def test_hidream_and_edit_by_signed_callback(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake:
        fake.callback_repeats = 2  # a duplicate: still delivered once
        # No polling before a callback: only the signed callback (or the poll it cues) finishes the job.
        harness = BotHarness(
            tmp_path, env_for(fake), [console.factory], callbacks=True, callback_grace=3600.0
        )
        async with harness as bot:
            made = await console.run(bot, "/hidream a red fox in snow --n 2 --format jpeg --seed 5")
            assert formats(made) == [("JPEG", *SQUARE[name])] * 2, console.err.getvalue()
            assert console.chat is not None and console.chat.last_job_id is not None
            job = await bot.engine.job(console.chat.last_job_id)
            assert job is not None and job.cost_usd == pytest.approx(COST[name])
            hooks = {j.callback_url for j in fake.jobs.values()}
            assert len(hooks) == 1 and hooks.pop().startswith(f"{bot.server_url}/webhooks/")  # type: ignore[union-attr]

            # Both images of the last job (`last#all`; `last` alone edits its first) are the references: personalization.
            edited = await console.run(bot, "/edit last#all the same fox in autumn")
            assert len(edited) == 1, console.err.getvalue()
            refs = references(fake)
            assert len(refs) == 2 and all(r.startswith(f"{bot.server_url}/media/") for r in refs)
            assert formats(edited)[0][1:] == SQUARE[name]
            assert {status for _, status in fake.callbacks_sent} == {200}
            assert len(fake.callbacks_sent) == 2 * len(fake.jobs)


@pytest.mark.parametrize("name", ["fal", "wavespeed"])
async def test_hidream_and_edit_by_polling_with_inline_references(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake, BotHarness(tmp_path, env_for(fake), [console.factory]) as bot:
        bot.provider.poll_interval = 0.01  # the real interval would make this slow, not different
        made = await console.run(bot, "/hidream a lighthouse --ar 16:9 --format webp")
        size = (1360, 768) if name == "fal" else (2560, 1456)
        assert formats(made) == [("WEBP", *size)], console.err.getvalue()
        assert len(fake.status_calls) == 3  # queued, running, completed
        assert all(job.callback_url is None for job in fake.jobs.values())

        # An edit keeps its image's shape (issue 21: no longer squashed into the default square).
        edited = await console.run(bot, "/edit last make it night")
        assert formats(edited) == [("PNG", *size)], console.err.getvalue()
        assert [r[:15] for r in references(fake)] == ["data:image/webp"]


async def test_fal_edit_keeps_the_aspect_of_its_one_image(tmp_path) -> None:
    console = Console(tmp_path)
    async with provider_fake("fal") as fake, BotHarness(tmp_path, env_for(fake), [console.factory]) as bot:
        bot.provider.poll_interval = 0.01
        source = await console.run(bot, "/hidream a tall tower --ar 9:16")
        edited = await console.run(bot, "/edit last at night --keep-aspect")
        assert formats(edited) == [("PNG", *formats(source)[0][1:])], console.err.getvalue()
        assert fake.submits[-1].json()["keep_original_aspect"] is True


async def test_wavespeed_keeps_the_aspect_by_the_size_it_asks_for(tmp_path) -> None:
    """WaveSpeed documents no keep_original_aspect: the bot asks for its nearest valid size of the
    image's shape instead (it refused `--keep-aspect` before issue 21)."""
    console = Console(tmp_path)
    async with (
        provider_fake("wavespeed") as fake,
        BotHarness(tmp_path, env_for(fake), [console.factory]) as bot,
    ):
        bot.provider.poll_interval = 0.01
        source = await console.run(bot, "/hidream a tall tower --ar 9:16")
        edited = await console.run(bot, "/edit last at night --keep-aspect")
        assert formats(edited) == formats(source) == [("PNG", 1456, 2560)], console.err.getvalue()
        body = fake.submits[-1].json()
        assert body["size"] == "1456*2560" and "keep_original_aspect" not in body


@pytest.mark.parametrize("name", ["fal", "wavespeed"])
async def test_failed_generation_is_told_and_refunded(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake, BotHarness(tmp_path, env_for(fake), [console.factory]) as bot:
        bot.provider.poll_interval = 0.01
        fake.outcome = "ERROR" if name == "fal" else "failed"
        assert await console.run(bot, "/hidream something forbidden") == []
        assert "could not make the image" in console.err.getvalue()
        quota = await bot.engine.quota("console", "local", "local")
        assert (quota.used, quota.remaining) == (0, 25)

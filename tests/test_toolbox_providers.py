"""What each provider's fake receives for the toolbox (issue 21), through the whole bot at the
console: an edit of a 16:9 image asks for that shape the way the provider documents it (Atlas Cloud's
`keep_original_aspect`; Pixazo and fal that flag and the nearest size of the same ratio in pixels;
WaveSpeed, which has no such flag, its nearest valid size of that ratio); `--ar` on an edit overrides
it; Upscale asks for 2048 pixels on the long side on the full model (WaveSpeed: at least its documented
minimum), and Atlas Cloud, which documents no size above its presets, refuses it before any call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.fal import FalFake
from tests.fakes.pixazo import PixazoFake
from tests.fakes.queue_common import QueueFake
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.console import KEYS, Console, formats
from tests.support.harness import BotHarness

PROVIDERS = ("pixazo", "atlascloud", "fal", "wavespeed")


@asynccontextmanager
async def provider_fake(name: str) -> AsyncIterator[QueueFake]:
    fake: QueueFake
    if name == "pixazo":
        fake = PixazoFake(api_key=KEYS[name])
    elif name == "atlascloud":
        fake = AtlasCloudFake(api_key=KEYS[name])
    elif name == "fal":
        fake = FalFake(key="fal-toolbox-key")
    else:
        fake = WaveSpeedFake(api_key="ws-toolbox-key")
    async with fake.running():
        yield fake


def env_for(name: str, fake: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"HIDREAM_PROVIDER": name, "HIDREAM_SHOW_SPEND": "true"}
    if name == "fal":
        return env | {"FAL_KEY": fake.key, "FAL_QUEUE_URL": fake.url, "FAL_JWKS_URL": fake.jwks_url}
    if name == "wavespeed":
        return env | {"WAVESPEED_API_KEY": fake.api_key, "WAVESPEED_BASE_URL": fake.url}
    prefix = name.upper()
    return env | {f"{prefix}_API_KEY": KEYS[name], f"{prefix}_BASE_URL": fake.url}


# The size fields of an edit of a 16:9 image (with no size asked) as each provider's doc spells them.
KEEP_SHAPE: dict[str, dict[str, Any]] = {
    "atlascloud": {"keep_original_aspect": True},
    "pixazo": {"keep_original_aspect": True, "image_size": {"width": 1360, "height": 768}},
    "fal": {"keep_original_aspect": True, "image_size": {"width": 1360, "height": 768}},
    "wavespeed": {"size": "2560*1456"},
}
SQUARE: dict[str, dict[str, Any]] = {
    "atlascloud": {"image_size": "square_hd"},
    "pixazo": {"image_size": {"width": 1024, "height": 1024}},
    "fal": {"image_size": {"width": 1024, "height": 1024}},
    "wavespeed": {"size": "1920*1920"},
}
UPSCALE: dict[str, dict[str, Any]] = {
    "pixazo": {"keep_original_aspect": True, "image_size": {"width": 2048, "height": 1152}},
    "fal": {"keep_original_aspect": True, "image_size": {"width": 2048, "height": 1152}},
    # 2048x1152 is below WaveSpeed's documented least total (2560x1440): its nearest valid 16:9 size.
    "wavespeed": {"size": "2560*1440"},
}
SIZE_FIELDS = ("keep_original_aspect", "image_size", "size")


def size_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in SIZE_FIELDS if key in body}


def ratio(size: tuple[str, int, int]) -> float:
    return size[1] / size[2]


@pytest.mark.parametrize("name", PROVIDERS)
async def test_edits_keep_their_shape_and_upscale_asks_for_the_largest_size(tmp_path, name: str) -> None:
    console = Console(tmp_path)
    async with provider_fake(name) as fake:
        public = name in ("pixazo", "atlascloud")  # they take references by URL only
        async with BotHarness(tmp_path, env_for(name, fake), [console.factory], callbacks=public) as bot:
            bot.provider.poll_interval = 0.01
            made = await console.run(bot, "/hidream a red fox in snow --ar 16:9 --seed 3")
            assert len(made) == 1, console.err.getvalue()
            assert abs(ratio(formats(made)[0]) - 16 / 9) < 0.02
            assert console.chat is not None and console.chat.last_job_id is not None
            key = console.chat.last_job_id[:8]

            for line in (f"/edit {key} make it night", f"/vary {key}"):
                edited = await console.run(bot, line)
                assert len(edited) == 1, console.err.getvalue()
                assert size_fields(fake.submits[-1].json()) == KEEP_SHAPE[name], line
                assert abs(ratio(formats(edited)[0]) - 16 / 9) < 0.02, (line, formats(edited))

            squared = await console.run(bot, f"/edit {key} make it night --ar 1:1")
            assert size_fields(fake.submits[-1].json()) == SQUARE[name]
            assert ratio(formats(squared)[0]) == 1.0

            submits = len(fake.submits)
            upscaled = await console.run(bot, f"/upscale {key}")
            if name == "atlascloud":
                assert upscaled == [] and len(fake.submits) == submits
                assert "Upscale is not offered by Atlas Cloud" in console.err.getvalue()
                return
            sent = fake.submits[-1]
            assert size_fields(sent.json()) == UPSCALE[name]
            assert "dev" not in sent.path, sent.path  # the full model
            assert "Change nothing" in sent.json()["prompt"]
            assert len(upscaled) == 1 and abs(ratio(formats(upscaled)[0]) - 16 / 9) < 0.02
            # The cost is said before it is spent where it differs from an image's (fal prices pixels).
            said = "Upscale costs $" in console.err.getvalue()
            assert said == (name == "fal"), console.err.getvalue()

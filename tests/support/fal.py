"""Shared by several test modules (moved from tests/test_provider_fal.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.model.config import Settings
from bot.model.requests import ImageRequest
from bot.providers.base import RetryPolicy, SubmitSpec
from bot.providers.fal import FalProvider
from bot.transport import Transport
from tests.fakes.fal import FalFake
from tests.fakes.queue_common import Receiver, Sleeps


def make_provider(
    fake: FalFake,
    client: Transport,
    *,
    key: str | None = None,
    clock: Callable[[], float] = time.time,
    sleeps: Sleeps | None = None,
    user_id: str | None = "",
) -> FalProvider:
    """`user_id`: FAL_USER_ID ("": the fake's account; None: unset)."""
    account = {} if user_id is None else {"FAL_USER_ID": user_id or fake.user_id}
    settings = Settings(
        _env_file=None,
        HIDREAM_PROVIDER="fal",
        FAL_KEY=key or fake.key,
        FAL_QUEUE_URL=fake.url,
        FAL_JWKS_URL=fake.jwks_url,
        **account,
    )
    return FalProvider(
        settings,
        client,
        retry=RetryPolicy(base_delay=0, max_delay=0),
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=clock,
    )


async def genuine_callback(
    fake: FalFake, receiver: Receiver, provider: FalProvider
) -> tuple[str, dict[str, str], bytes]:
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    got = (await receiver.wait_for(len(receiver.received) + 1))[-1]
    return job_id, got.headers, got.body

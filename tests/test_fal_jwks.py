"""fal's JWKS endpoint failing: fetches back off on the provider's clock, and the keys held keep working."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.model.errors import CallbackRejected
from bot.providers.fal import FalProvider
from bot.providers.jwks import JWKS_BACKOFF_MAX_S, JWKS_MAX_AGE_S, JWKS_REFETCH_MIN_S
from tests.fakes.fal import FalFake
from tests.fakes.queue_common import Receiver
from tests.support.fal import genuine_callback, make_provider


@pytest.fixture
async def fake() -> AsyncIterator[FalFake]:
    async with FalFake().started() as running:
        yield running


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def callback_now(
    provider: FalProvider, fake: FalFake, receiver: Receiver, clock: Clock
) -> tuple[str, dict[str, str], bytes]:
    """A genuine callback, signed at the fake clock's time (so only the keys can be why it is refused)."""
    job_id, _, body = await genuine_callback(fake, receiver, provider)
    return job_id, fake.sign(json.loads(body)["request_id"], body, timestamp=int(clock.now)), body


async def refused_with_503(provider: FalProvider, fake: FalFake, receiver: Receiver, clock: Clock) -> None:
    job_id, headers, body = await callback_now(provider, fake, receiver, clock)
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(job_id, headers, body)
    assert caught.value.status == 503


async def test_a_failing_jwks_endpoint_is_asked_once_per_backoff_not_per_callback(
    fake: FalFake, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    fake.jwks_available = False
    clock = Clock()
    provider = make_provider(fake, client, clock=clock)
    for _ in range(10):
        await refused_with_503(provider, fake, receiver, clock)
    assert fake.jwks_fetches == 1

    # The first backoff has passed: one more try, which fails and doubles the wait.
    clock.now += JWKS_REFETCH_MIN_S
    for _ in range(3):
        await refused_with_503(provider, fake, receiver, clock)
    assert fake.jwks_fetches == 2
    clock.now += JWKS_REFETCH_MIN_S
    await refused_with_503(provider, fake, receiver, clock)
    assert fake.jwks_fetches == 2  # 30 s are not enough now: the wait is 60 s
    clock.now += JWKS_REFETCH_MIN_S
    fake.jwks_available = True
    job_id, headers, body = await callback_now(provider, fake, receiver, clock)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 3


async def test_the_backoff_grows_to_its_cap(
    fake: FalFake, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    fake.jwks_available = False
    clock = Clock()
    provider = make_provider(fake, client, clock=clock)
    for _ in range(12):
        await refused_with_503(provider, fake, receiver, clock)
        clock.now += JWKS_BACKOFF_MAX_S  # each wait is over by then, however long it has grown
    assert fake.jwks_fetches == 12
    clock.now -= 1  # just before the (capped) wait is over: no fetch
    await refused_with_503(provider, fake, receiver, clock)
    assert fake.jwks_fetches == 12


async def test_keys_held_keep_verifying_while_the_endpoint_fails(
    fake: FalFake, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    provider = make_provider(fake, client, clock=clock)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 1

    # A day later the copy is due for a refresh, but the endpoint is down: the old keys still verify.
    fake.jwks_available = False
    clock.now += JWKS_MAX_AGE_S + 1
    for _ in range(10):
        job_id, headers, body = await callback_now(provider, fake, receiver, clock)
        assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 2

    # Once it answers again, the next refresh after the backoff succeeds and the spacing resets.
    fake.jwks_available = True
    clock.now += JWKS_REFETCH_MIN_S
    job_id, headers, body = await callback_now(provider, fake, receiver, clock)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 3

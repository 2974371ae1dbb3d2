"""Fixtures every provider contract test uses: a pooled client, and a stand-in for the bot's server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.providers.aiohttp_transport import provider_client
from bot.transport import Transport
from tests.fakes.queue_common import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().running() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[Transport]:
    async with provider_client(timeout=30) as c:
        yield c

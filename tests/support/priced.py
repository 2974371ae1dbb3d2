"""The sandbox at a price, so that spend, reports and budgets have dollars to count (the sandbox
itself costs nothing)."""

from __future__ import annotations

from bot.app import Bot
from bot.model.requests import ImageRequest, Tier
from bot.providers.sandbox.provider import SandboxProvider
from bot.providers.sandbox.service import SandboxService
from tests.support.harness import sandbox_of

COST = 0.04  # dollars per image


class PricedSandbox(SandboxProvider):
    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return COST * request.n


def priced(bot: Bot) -> SandboxService:
    """Put a priced sandbox in the running bot's place of its sandbox (the engine's and the worker's
    one mapping of providers), talking to the same sandbox service, which it returns (its counters)."""
    service = sandbox_of(bot)
    bot.engine.providers["sandbox"] = PricedSandbox(
        bot.settings, bot.http, base_url=f"{bot.server_url}/sandbox", token=service.token
    )
    return service

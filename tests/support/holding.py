"""Shared by several test modules (moved from tests/test_runner_limits.py)."""

from __future__ import annotations

import io
import time
from collections import Counter

from PIL import Image

from bot.app import Bot
from bot.jobs.images import to_data_uri
from bot.model.requests import ChatRequest, ImageRequest, Tier, parse_command
from bot.providers.base import Provider, ProviderStatus, ResultImage, SubmitSpec


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    return to_data_uri(out.getvalue(), "image/png")


class HoldingProvider(Provider):
    """Stands in for the sandbox: a job stays running until `release`d."""

    name = "sandbox"
    poll_interval = 3600.0

    def __init__(self) -> None:
        self.held: dict[str, str] = {}  # provider id -> job id, submitted and not yet reported done
        self.most_held = 0
        self.submits: Counter[str] = Counter()
        self.status_reads = 0
        self.released: set[str] = set()
        self.image = png()

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return ["a provider that holds its jobs"]

    async def submit(self, spec: SubmitSpec) -> str:
        self.submits[spec.job_id] += 1
        provider_id = f"held-{spec.job_id}"
        self.held[provider_id] = spec.job_id
        self.most_held = max(self.most_held, len(self.held))
        return provider_id

    async def status(self, provider_job_id: str) -> ProviderStatus:
        self.status_reads += 1
        if provider_job_id in self.released:
            self.held.pop(provider_job_id, None)
            return ProviderStatus(state="completed", images=[ResultImage(self.image)])
        return ProviderStatus(state="running")


def chat(i: int) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id=f"u{i % 7}",
        workspace_id="w1",
        origin={"thread": f"t{i}"},
        request=parse_command(f"a fox number {i}").request,
    )


def holding(bot: Bot) -> HoldingProvider:
    provider = HoldingProvider()
    bot.engine.providers["sandbox"] = provider
    return provider


async def release_all(bot: Bot, provider: HoldingProvider) -> None:
    for provider_id, job_id in list(provider.held.items()):
        provider.released.add(provider_id)
        bot.runner.wake(job_id)

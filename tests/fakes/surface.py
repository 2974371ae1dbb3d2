"""A chat surface that keeps what the engine sends it, for engine tests that need no platform."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.model.jobs import Job, OutputImage, Post, Progress


class RecordingSurface:
    name = "test"

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, list[OutputImage]]] = []
        self.told: list[tuple[str, str]] = []
        self.progress_lines: list[tuple[str, str]] = []
        self.delivered = asyncio.Event()
        self.fail_deliveries = 0

    async def __aenter__(self) -> RecordingSurface:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        if self.fail_deliveries > 0:
            self.fail_deliveries -= 1
            raise ConnectionError("platform unavailable")
        # Read whole here (they come as files, deleted once the post ends): tests compare the bytes.
        self.deliveries.append((job.id, [await image.loaded() for image in images]))
        self.delivered.set()
        return [Post(message_key=f"msg-{job.id}", thread_key=str(job.origin.get("thread", "")))]

    async def tell(self, job: Job, text: str) -> None:
        self.told.append((job.id, text))

    async def progress(self, job: Job, progress: Progress) -> None:
        self.progress_lines.append((job.id, progress.text()))

    def factory(self, bot: Any) -> RecordingSurface:
        return self

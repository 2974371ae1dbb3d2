"""Shared by several test modules."""

from __future__ import annotations

import os

from storage.store import Store as AnyStore
from tests.support.jobs import NOW


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def put(store: AnyStore, size: int = 64) -> str:
    return await store.put_media(os.urandom(size), "image/png", 8, 8)


async def held(store: AnyStore, *media_ids: str) -> list[bool]:
    return [await store.media(m) is not None for m in media_ids]

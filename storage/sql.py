"""Queries of the small tables (installations, subjects, settings, reports, ...) on the store's
database, whichever it is: one SQL text with `?` placeholders (storage/dialects.py numbers them for
PostgreSQL); upserts as `ON CONFLICT ... DO UPDATE`, which both databases speak."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from storage.base import Store
from storage.connections import Queries


class Sql:
    """Runs the same SQL on the store's database.

    `apart`: for queries that may read many rows (the operators' page, /metrics): `fetch` runs them
    where they keep nothing else waiting (on SQLite, in a thread on a connection of their own)."""

    def __init__(self, store: Store, *, apart: bool = False) -> None:
        self.store = store
        self.apart = apart

    def now(self) -> float:
        return self.store.now()

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one write in its own transaction; how many rows it changed."""
        async with self.transaction() as writes:
            return await writes.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        """Several writes in one transaction."""
        async with self.store.database.transaction() as db:
            yield db

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row = await self.store.database.fetchrow(sql, *args)
        return None if row is None else tuple(row)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.apart:
            return await self.store.database.read_apart(sql, *args)
        return [tuple(row) for row in await self.store.database.fetch(sql, *args)]

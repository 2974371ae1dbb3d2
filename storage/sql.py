"""One SQL text for both store backends, for the small tables that need no backend's own dialect
(Slack installations, subjects, settings, ...): written with `?` placeholders (SQLite's), numbered
for PostgreSQL as $1, $2, ...; upserts as `ON CONFLICT ... DO UPDATE`, which both databases speak."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from storage.base import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, ... (the SQL given here has no `?` inside a literal)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


class Sql:
    """Runs the same SQL on whichever backend `store` is.

    `apart`: for queries that may read many rows (the operators' page, /metrics): on SQLite, `fetch`
    runs them in a thread on a connection of their own, so the event loop never waits for them."""

    def __init__(self, store: Store, *, apart: bool = False) -> None:
        if not isinstance(store, (SqliteStore, PostgresStore)):
            raise TypeError(f"no SQL for a {type(store).__name__}")
        self.store: SqliteStore | PostgresStore = store
        self.apart = apart

    def now(self) -> float:
        return float(self.store.clock())

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one write in its own transaction; how many rows it changed."""
        async with self.transaction() as writes:
            return await writes.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Writes]:
        """Several writes in one transaction, on either backend."""
        async with self.store.transaction() as db:
            yield Writes(db, postgres=isinstance(self.store, PostgresStore))

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        if isinstance(self.store, PostgresStore):
            row = await self.store.pool.fetchrow(numbered(sql), *args)
            return None if row is None else tuple(row)
        async with self.store.db.execute(sql, args) as cur:
            found = await cur.fetchone()
        return None if found is None else tuple(found)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if isinstance(self.store, PostgresStore):
            return [tuple(row) for row in await self.store.pool.fetch(numbered(sql), *args)]
        if self.apart:
            return await self.store.db.read_apart(sql, args)
        async with self.store.db.execute(sql, args) as cur:
            return [tuple(row) for row in await cur.fetchall()]


class Writes:
    """The writes of one open transaction (`Sql.transaction`)."""

    def __init__(self, db: Any, *, postgres: bool) -> None:
        self.db = db
        self.postgres = postgres

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one write; how many rows it changed."""
        if self.postgres:
            status = await self.db.execute(numbered(sql), *args)
            return int(str(status).rsplit(" ", 1)[-1])
        cur = await self.db.execute(sql, args)
        return int(cur.rowcount)

"""The connection seam: the store's queries run through `Database` (reads, and transactions of
writes) and never see which database answers. SQLite: the store's one connection (storage/sqlite_conn.py),
each transaction a BEGIN IMMEDIATE under one lock of this process. PostgreSQL: an asyncpg pool, each
transaction on a connection of its own. Rows are read by index or by column name on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager, contextmanager
from typing import Any, Protocol

import asyncpg

from bot.model.errors import StoreUnavailable
from storage.dialects import Dialect, PostgresDialect
from storage.sqlite_conn import Connection

# Rows a stream fetches at a time.
STREAM_BATCH = 500


class Queries(Protocol):
    """SQL in the store's one text (storage/dialects.py), run where this object runs it."""

    dialect: Dialect

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Any: ...


class Database(Queries, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Queries]:
        """Several statements in one transaction (reads outside one may see any committed state)."""
        ...

    async def read_apart(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """A read that may take long, run where it keeps nothing else waiting."""
        ...

    def stream(
        self, sql: str, *args: Any, batch: int = STREAM_BATCH
    ) -> AsyncGenerator[tuple[Any, ...], None]:
        """The rows of a read of any length, one at a time, never more than `batch` of them held at
        once: PostgreSQL's server-side cursor, or SQLite's cursor iterated on a read-only connection
        of its own in a thread. It sees one snapshot of the database from start to end."""
        ...


async def fetchval(db: Queries, sql: str, *args: Any) -> Any:
    row = await db.fetchrow(sql, *args)
    return None if row is None else row[0]


class _SqliteQueries:
    dialect = Dialect()

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self.conn.execute(sql, args)
        return int(cur.rowcount)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.conn.execute(sql, args) as cur:
            return list(await cur.fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self.conn.execute(sql, args) as cur:
            return await cur.fetchone()


class SqliteDatabase(_SqliteQueries):
    """Writes that must be atomic run under one lock inside BEGIN IMMEDIATE, so the coroutines of this
    process never interleave a transaction (and admission can never overspend)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.lock = asyncio.Lock()

    @asynccontextmanager
    async def raw_transaction(self) -> AsyncIterator[Connection]:
        async with self.lock:
            try:
                await self._settle("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                if self.conn.in_transaction:  # cancelled once the BEGIN had run
                    await self._settle("ROLLBACK")
                raise
            try:
                yield self.conn
            except BaseException:
                await self._settle("ROLLBACK")
                raise
            try:
                await self._settle("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # a COMMIT that failed (disk full, I/O) leaves it open
                    await self._settle("ROLLBACK")
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        async with self.raw_transaction() as conn:
            yield _SqliteQueries(conn)

    async def _settle(self, statement: str) -> None:
        """Run a BEGIN, COMMIT or ROLLBACK to its end even when the caller is cancelled meanwhile (a job
        task stopped by a shutdown or a lost lease), then pass the cancellation on: left half-done, the
        store's one connection would stay inside a transaction and refuse every later BEGIN."""
        step = asyncio.ensure_future(self.conn.execute(statement))
        cancelled = False
        while not step.done():
            try:
                await asyncio.shield(step)
            except asyncio.CancelledError:
                cancelled = True
        step.result()
        if cancelled:
            raise asyncio.CancelledError

    async def read_apart(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.conn.read_apart(sql, args)

    async def stream(
        self, sql: str, *args: Any, batch: int = STREAM_BATCH
    ) -> AsyncGenerator[tuple[Any, ...], None]:
        async with aclosing(self.conn.stream_apart(sql, args, batch)) as batches:
            async for rows in batches:
                for row in rows:
                    yield row


# What asyncpg raises when the server cannot be reached or went away: a connection refused, reset or
# timed out (OSError, TimeoutError), closed under a query, or the server shutting down or starting.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


@contextmanager
def reached() -> Iterator[None]:
    """Within: an error that says PostgreSQL could not be reached becomes StoreUnavailable (its
    detail names the driver's error, never the URL), which the core tells apart from a bug."""
    try:
        yield
    except StoreUnavailable:
        raise
    except _UNREACHABLE as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


class _PostgresQueries:
    dialect: Dialect = PostgresDialect()

    def __init__(self, db: Any) -> None:
        self.db = db  # a pool or one of its connections: both run queries alike

    async def execute(self, sql: str, *args: Any) -> int:
        with reached():
            status = await self.db.execute(self.dialect.sql(sql), *args)
        last = str(status).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        with reached():
            return list(await self.db.fetch(self.dialect.sql(sql), *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        with reached():
            return await self.db.fetchrow(self.dialect.sql(sql), *args)


class PostgresDatabase(_PostgresQueries):
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        # The connection's acquisition, BEGIN and COMMIT too (the statements within translate their own).
        with reached():
            async with self.db.acquire() as conn:
                try:
                    async with conn.transaction():
                        yield _PostgresQueries(conn)
                except asyncpg.InterfaceError as exc:
                    # The ROLLBACK or COMMIT of a connection lost meanwhile: asyncpg says the connection is
                    # closed (or already given back), which is the database gone away, not a misuse.
                    if not isinstance(exc.__context__, StoreUnavailable) and "closed" not in str(exc):
                        raise
                    raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def read_apart(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.fetch(sql, *args)]

    async def stream(
        self, sql: str, *args: Any, batch: int = STREAM_BATCH
    ) -> AsyncGenerator[tuple[Any, ...], None]:
        # A cursor lives in a transaction: a read-only one, repeatable read, so it is one snapshot.
        async with self.db.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            async for record in conn.cursor(self.dialect.sql(sql), *args, prefetch=batch):
                yield tuple(record)

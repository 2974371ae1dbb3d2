"""The PostgreSQL backend, for several processes sharing one database: the one store
(storage/store.py) on an asyncpg pool, image bytes in the media rows, wake-ups by LISTEN/NOTIFY, and
space given back by PostgreSQL's autovacuum."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bot import words
from bot.model.errors import ConfigError
from storage.connections import PostgresDatabase, Queries, _PostgresQueries
from storage.dialects import MIGRATION_LOCK
from storage.media import ImageBytes, RowBytes
from storage.migrations import MEDIA_TO_FILES, migrate
from storage.objects import ObjectStoreError
from storage.quota import QuotaDefaults, QuotaRules
from storage.retention import NoSpaceToGive
from storage.store import Store
from storage.wakeups import PostgresWakeups, Wakeups


async def connection_problem(url: str, seconds: float = words.DB_CONNECT_SECONDS) -> str | None:
    """Why the database at `url` cannot be reached within `seconds` (connecting and signing in, no
    more), in our words; None when it can. Never names the URL (it may carry a password)."""
    try:
        async with asyncio.timeout(seconds):
            conn = await asyncpg.connect(url, timeout=seconds)
            await conn.close()
    except TimeoutError:
        return words.DB_NO_ANSWER
    except ConnectionRefusedError:
        return words.DB_REFUSED
    except socket.gaierror:
        return words.DB_NO_SUCH_HOST
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        return words.DB_WRONG_LOGIN
    except asyncpg.InvalidCatalogNameError:
        return words.DB_NO_SUCH_DATABASE
    except asyncpg.PostgresError as exc:
        return words.db_said(exc.args[0] if exc.args else type(exc).__name__)
    except (ValueError, asyncpg.InterfaceError):
        return words.DB_NOT_A_URL
    except OSError as exc:
        return exc.strerror or words.DB_NO_ANSWER
    return None


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        *,
        default_limit: int,
        default_ceiling: int | None = None,
        admin_max: int | None = None,
        person_quota: int | None = None,
        clock: Any = time.time,
        pool_size: int = 10,
        policy: QuotaRules | None = None,
        media: ImageBytes | None = None,
    ) -> None:
        defaults = QuotaDefaults(default_limit, default_ceiling, admin_max, person_quota)
        super().__init__(defaults=defaults, clock=clock, policy=policy)
        self.url = url
        self.pool_size = pool_size
        self._pool: Any = None
        # Where image bytes live: the media rows, unless an object store is given (HIDREAM_MEDIA_URL).
        self.media_bytes: ImageBytes = media or RowBytes()
        self.space = NoSpaceToGive(self.media_bytes, self.held_media)

    async def __aenter__(self) -> PostgresStore:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, reset=_nothing_to_reset
            )
            await self._migrate()
        except (OSError, asyncpg.PostgresError) as exc:
            await self.__aexit__()
            # The URL may carry a password: name the error, never the URL.
            raise ConfigError(f"HIDREAM_DATABASE_URL: cannot open the PostgreSQL database: {exc}") from exc
        try:
            await self.media_bytes.open()
        except ObjectStoreError as exc:
            await self.__aexit__()
            raise ConfigError(f"HIDREAM_MEDIA_URL: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @property
    def database(self) -> PostgresDatabase:  # type: ignore[override]
        return PostgresDatabase(self.pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """An asyncpg connection inside one transaction (for `db copy`)."""
        async with self.pool.acquire() as db, db.transaction():
            yield db

    async def _migrate(self) -> None:
        async with self.pool.acquire() as db:
            # A session lock, held across the migrations' own transactions: the first process to get
            # it migrates, the others wait and then find nothing left to do.
            await db.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                queries = _PostgresQueries(db)

                @asynccontextmanager
                async def transaction() -> AsyncIterator[Queries]:
                    async with db.transaction():
                        yield queries

                # Image bytes stay in the rows here.
                await migrate(queries, transaction, skip=(MEDIA_TO_FILES,))
            finally:
                try:
                    await db.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
                except BaseException:
                    # A session lock must not go back to the pool (no reset query runs there): the
                    # connection goes, and the lock with it.
                    db.terminate()
                    raise

    def wakeups(self) -> Wakeups:
        return PostgresWakeups(self.url, self.pool)

    def replica_name(self) -> str:
        return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def _nothing_to_reset(_connection: Any) -> None:
    """What a pooled connection needs when it is given back: nothing more than asyncpg does itself (it
    rolls back a transaction left open). asyncpg's default also sends a reset query to the server
    (releasing advisory locks, closing cursors, UNLISTEN, RESET ALL): a round trip on every release,
    about 37 a job (docs/benchmarks.md). The store leaves no such state on a pooled connection: its
    advisory locks are transaction-scoped (the migrations' session lock is released in a `finally`, or
    its connection closed),
    cursors live in transactions, it sets no session settings, and it listens on a connection of its
    own (storage/wakeups.py)."""

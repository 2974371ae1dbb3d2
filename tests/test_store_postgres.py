"""What only the PostgreSQL store has to prove: its migrations, several stores (as several processes
would) migrating one database together, and the quota reserve atomic across their connections."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.jobs.quota_policy import POLICY
from bot.model.errors import ConfigError, QuotaExceeded
from storage.migrations import MIGRATIONS
from storage.postgres import PostgresStore
from tests.support.jobs import NOW, make_job


async def test_migrations_from_empty_and_idempotent(pg_url: str) -> None:
    async with PostgresStore(pg_url, policy=POLICY, default_limit=5, clock=lambda: NOW) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        tables = {
            r[0]
            for r in await store.pool.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        }
        assert {"jobs", "ledger", "limits", "grants", "budgets", "media", "posts", "meta"} <= tables
        media_type = await store.pool.fetchval(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name='media' AND column_name='data'"
        )
        assert media_type == "bytea"
    async with PostgresStore(
        pg_url, policy=POLICY, default_limit=5, clock=lambda: NOW
    ) as store:  # again: nothing changes
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.pool.fetchval("SELECT COUNT(*) FROM schema_version") == 1


async def test_stores_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, policy=POLICY, default_limit=5, clock=lambda: NOW) for _ in range(4)]
    # Without the advisory lock, all of them find version 0 and all but one fail on CREATE TABLE.
    opened = await asyncio.gather(*(s.__aenter__() for s in stores), return_exceptions=True)
    try:
        assert [o for o in opened if isinstance(o, BaseException)] == []
        for store in stores:
            assert await store.schema_version() == len(MIGRATIONS)
        assert await stores[0].pool.fetchval("SELECT COUNT(*) FROM schema_version") == 1
    finally:
        for store in stores:
            await store.__aexit__()


async def test_hundred_admits_from_three_stores_with_ten_left_admit_exactly_ten(pg_url: str) -> None:
    stores = [
        PostgresStore(pg_url, policy=POLICY, default_limit=10, clock=lambda: NOW, pool_size=8)
        for _ in range(3)
    ]
    for store in stores:  # one after another: the race under test is the reserve, not the migration
        await store.__aenter__()
    try:

        async def one(store: PostgresStore) -> bool:
            try:
                await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
            except QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(one(stores[i % 3]) for i in range(100)))
        assert sum(results) == 10
        for store in stores:
            status = await store.quota("test:u1", "test:w1")
            assert (status.used, status.remaining) == (10, 0)
            assert len(await store.unfinished_jobs()) == 10
        # And they really were separate connections, all busy in the same database.
        backends = await stores[0].pool.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
        assert backends >= 3
    finally:
        for store in stores:
            await store.__aexit__()


async def test_a_second_secret_maker_gets_the_first_secret(pg_url: str) -> None:
    async with (
        PostgresStore(pg_url, policy=POLICY, default_limit=5) as one,
        PostgresStore(pg_url, policy=POLICY, default_limit=5) as two,
    ):
        made = await asyncio.gather(*(s.secret("media-links") for s in (one, two, one, two)))
        assert len(set(made)) == 1


async def test_an_unreachable_server_is_a_clear_config_error() -> None:
    # A port nothing listens on (bound, then closed, so the kernel refuses the connection).
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    store = PostgresStore(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x", policy=POLICY, default_limit=5)
    with pytest.raises(ConfigError, match="HIDREAM_DATABASE_URL") as err:
        await store.__aenter__()
    assert "hunter2" not in str(err.value)


async def test_a_connection_given_back_to_the_pool_costs_no_reset_query_and_loses_an_open_transaction(
    pg_url: str,
) -> None:
    # asyncpg's default sends the server a reset query on every release (a round trip per store call);
    # the store's own reset sends nothing, and asyncpg still rolls back what was left open.
    async with PostgresStore(pg_url, policy=POLICY, default_limit=5, pool_size=1) as store:
        sent: list[str] = []
        async with store.pool.acquire() as conn:
            conn.add_query_logger(lambda query: sent.append(query.query))
            assert await conn.fetchval("SELECT 1") == 1
        assert sent == ["SELECT 1"]
        async with store.pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (x int)")
        async with store.pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None

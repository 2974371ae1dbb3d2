"""Both store backends behind one fixture, so one contract suite runs against each.

`open_store(default_limit=..., ...)` opens a store of the test's backend. SQLite: a file in the test's
tmp_path. PostgreSQL: a database made for this test run (one per xdist worker, dropped at its end)
and a schema of its own for each test, so no test or worker ever sees another's rows. Every store a
test opens shares that test's file or schema, as processes sharing one database would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.jobs.quota_policy import POLICY
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from storage.store import Store
from tests.support.harness import skip_unless_ci

# The server the machines and CI run (trust authentication); HIDREAM_TEST_POSTGRES_URL overrides it.
ADMIN_URL = os.environ.get("HIDREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

OpenStore = Callable[..., Store]


async def _admin(sql: str) -> None:
    db = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await db.execute(sql)
    finally:
        await db.close()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | BaseException]:
    """The URL of a database of this run's own, or why there is none (each test then skips or fails)."""
    name = f"hidream_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f"CREATE DATABASE {name}"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        yield exc
        return
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def postgres_url(postgres_database: str | BaseException) -> str:
    """A fresh schema in this run's database, as a URL whose connections use it."""
    if isinstance(postgres_database, BaseException):
        where = urlsplit(ADMIN_URL)  # host and port only: the URL may carry a password
        skip_unless_ci(
            f"PostgreSQL is not reachable at {where.hostname}:{where.port or 5432}: {postgres_database!r}"
        )
    schema = f"t_{secrets.token_hex(6)}"

    async def make() -> None:
        db = await asyncpg.connect(postgres_database, timeout=5)
        try:
            await db.execute(f"CREATE SCHEMA {schema}")
        finally:
            await db.close()

    asyncio.run(make())
    # asyncpg passes unknown URL parameters to the server as settings: every connection uses the schema.
    return f"{postgres_database}?search_path={schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> OpenStore:
    if backend == "sqlite":
        path = tmp_path / "s.db"

        def sqlite(**options: Any) -> Store:
            return SqliteStore(path, **{"policy": POLICY, **options})

        return sqlite
    url = postgres_url(request.getfixturevalue("postgres_database"))

    def postgres(**options: Any) -> Store:
        return PostgresStore(url, **{"policy": POLICY, **options})

    return postgres


@pytest.fixture
def pg_url(postgres_database: str | BaseException) -> str:
    """A fresh schema's URL, for the tests that are about PostgreSQL only."""
    return postgres_url(postgres_database)


async def raw_job(store: Store, job_id: str) -> tuple[dict[str, Any], str]:
    """A job's row as the database holds it, and its ledger state (for checks that nothing changed)."""
    async with store.database.transaction() as db:
        row = await db.fetchrow("SELECT * FROM jobs WHERE id=?", job_id)
        state = await db.fetchrow("SELECT state FROM ledger WHERE job_id=?", job_id)
    assert row is not None and state is not None
    return {name: row[name] for name in row.keys()}, str(state[0])

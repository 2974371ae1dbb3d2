"""Copying the rows of a SQLite store into an empty PostgreSQL store, in one transaction on the target.

Both stores migrated themselves on opening from the one migration list (storage/migrations.py), so
their tables are the same: each table is copied whole, by the columns the source has, read from the
database. What the dialects make different is taken from the target's own columns: the numbers
PostgreSQL gives itself (serial ids, the insertion order of posts) are left to it, and SQLite's 0/1
goes as a BOOLEAN where the target column is one. Image bytes are read through the SQLite store's own
`media()`, wherever it keeps them, and written where the target keeps them (`media_bytes`).

Nothing else may write to the SQLite database meanwhile (the bot is stopped for the copy): its rows
are read as they are, table after table. Rows a trial start left in the target (the media-links
secret) are replaced by the source's, so links signed before the move stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.dialects import PostgresDialect
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

# The store's own bookkeeping: each side migrated itself on opening.
_NOT_COPIED = ("schema_version",)
# Which process held a job is the old machine's business: a copied job is nobody's, so the first
# replica that looks for free jobs takes it up at once.
NOT_CARRIED = {"jobs": ("owner", "lease_until")}
ROWS_PER_BATCH = 500
# Images are read one by one and held until their batch is written: a few, whatever their size.
IMAGES_PER_BATCH = 16


class TargetNotEmpty(Exception):
    def __init__(self, jobs: int) -> None:
        super().__init__(f"the PostgreSQL database already holds {jobs} jobs; copy into an empty one")
        self.jobs = jobs


class CopyFailed(Exception):
    """A table's rows could not be written; the transaction on the target was rolled back."""

    def __init__(self, table: str, cause: BaseException) -> None:
        super().__init__(f"copying {table} failed: {type(cause).__name__}")
        self.table = table
        self.cause = cause


@dataclass
class Copied:
    """What was copied: rows per table, in the order they were copied, and the images' bytes."""

    rows: dict[str, int] = field(default_factory=dict)
    images: int = 0
    image_bytes: int = 0
    # Listed in the media table but with no bytes the store could give (skipped, as retention would).
    missing_images: int = 0


async def copy_sqlite_to_postgres(source: SqliteStore, target: PostgresStore) -> Copied:
    """Copy every table, in the order the migrations made them. Raises TargetNotEmpty when the target
    holds any job, and CopyFailed (the target unchanged) when a table cannot be written."""
    tables = await source.database.fetch(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    )
    copied = Copied()
    async with target.transaction() as db:
        # Held to the end: a bot starting on the target meanwhile cannot add a job under the copy.
        await db.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
        held = int(await db.fetchval("SELECT count(*) FROM jobs"))
        if held:
            raise TargetNotEmpty(held)
        numbered, flags = await _target_columns(db)
        for (table,) in tables:
            if table in _NOT_COPIED:
                continue
            try:
                await db.execute(f'DELETE FROM "{table}"')
                copied.rows[table] = await _copy_table(source, target, db, table, numbered, flags, copied)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError, TypeError) as exc:
                raise CopyFailed(table, exc) from exc
    return copied


async def _target_columns(db: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The target's (table, column) pairs that PostgreSQL numbers itself, and those that are BOOLEAN."""
    rows = await db.fetch(
        "SELECT table_name, column_name, data_type, column_default, is_identity "
        "FROM information_schema.columns WHERE table_schema = current_schema()"
    )
    numbered = {
        (r["table_name"], r["column_name"])
        for r in rows
        if str(r["column_default"] or "").startswith("nextval(") or r["is_identity"] == "YES"
    }
    flags = {(r["table_name"], r["column_name"]) for r in rows if r["data_type"] == "boolean"}
    return numbered, flags


async def _copy_table(
    source: SqliteStore,
    target: PostgresStore,
    db: Any,
    table: str,
    numbered: set[tuple[str, str]],
    flags: set[tuple[str, str]],
    copied: Copied,
) -> int:
    described = await source.database.fetch(f'PRAGMA table_info("{table}")')
    skip = {*NOT_CARRIED.get(table, ()), "data"}
    columns = [str(r[1]) for r in described if (table, str(r[1])) not in numbered and str(r[1]) not in skip]
    images = table == "media"
    names = [*columns, *(["data"] if images and target.media_bytes.column else [])]
    insert = PostgresDialect().sql(
        f'INSERT INTO "{table}" ({", ".join(_quoted(c) for c in names)}) VALUES ({",".join("?" * len(names))})'
    )
    as_flag = [(table, c) in flags for c in columns]
    count = 0
    # In the order they were written (posts_of lists a job's posts so).
    select = f'SELECT {", ".join(_quoted(c) for c in columns)} FROM "{table}" ORDER BY rowid'
    async with source.db.execute(select) as cur:
        while rows := await cur.fetchmany(IMAGES_PER_BATCH if images else ROWS_PER_BATCH):
            values = [
                [bool(v) if f and v is not None else v for f, v in zip(as_flag, r, strict=True)] for r in rows
            ]
            if images:
                values = await _with_bytes(
                    source, values, columns.index("id"), len(names) > len(columns), copied
                )
            await db.executemany(insert, values)
            count += len(values)
    return count


async def _with_bytes(
    source: SqliteStore, rows: list[list[Any]], id_at: int, want_data: bool, copied: Copied
) -> list[list[Any]]:
    kept = []
    for row in rows:
        stored = await source.media(str(row[id_at]))
        if stored is None:
            copied.missing_images += 1
            continue
        copied.images += 1
        copied.image_bytes += len(stored.data)
        kept.append([*row, stored.data] if want_data else row)
    return kept


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

"""Copying the rows of a SQLite store into an empty PostgreSQL store, in one transaction on the target.

Both stores migrated themselves on opening from the one migration list (storage/migrations.py), so
their tables are the same: each table is copied whole, by the columns the source has, read from the
database. What the dialects make different is taken from the target's own columns: the numbers
PostgreSQL gives itself (serial ids, the insertion order of posts) are left to it, and SQLite's 0/1
goes as a BOOLEAN where the target column is one. Image bytes are read through the SQLite store's own
`media()`, wherever it keeps them, and written where the target keeps them (`media_bytes`: its rows,
or an object store, HIDREAM_MEDIA_URL, which needs no copy when the source already uses the same one).
`copy_files_to_objects` moves a SQLite store's image files into an object store, the rows staying.

Nothing else may write to the SQLite database meanwhile (the bot is stopped for the copy): its rows
are read as they are, table after table. Rows a trial start left in the target (the media-links
secret) are replaced by the source's, so links signed before the move stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.dialects import PostgresDialect
from storage.media import ImageBytes
from storage.objects import ObjectBytes
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
    images = table == "media"
    # A media row's columns about its bytes are the target's strategy's own (storage/media.py).
    skip = {*NOT_CARRIED.get(table, ()), *(BYTES_COLUMNS if images else ())}
    columns = [str(r[1]) for r in described if (table, str(r[1])) not in numbered and str(r[1]) not in skip]
    names = [*columns, *(media_columns(target.media_bytes) if images else [])]
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
                values = await _with_bytes(source, target, values, columns.index("id"), copied)
            await db.executemany(insert, values)
            count += len(values)
    return count


async def _with_bytes(
    source: SqliteStore, target: PostgresStore, rows: list[list[Any]], id_at: int, copied: Copied
) -> list[list[Any]]:
    """The batch's rows with the values the target keeps about their bytes, the bytes written where
    the target keeps them apart from its rows first (an object store; not when it is the source's)."""
    kept, apart = [], {}
    in_place = same_place(source.media_bytes, target.media_bytes)
    for row in rows:
        media_id = str(row[id_at])
        # A file beside the database first (an install that kept files until now), else where the
        # source keeps its images (the object store both name, when the source already used it).
        data = await source.files.read(media_id)
        from_files = data is not None
        if data is None and source.media_bytes is not source.files:
            stored = await source.media(media_id)
            data = None if stored is None else stored.data
        if data is None:
            copied.missing_images += 1
            continue
        copied.images += 1
        copied.image_bytes += len(data)
        kept.append([*row, *target.media_bytes.in_row(data)])
        if from_files or not in_place:
            apart[media_id] = data
    await target.media_bytes.keep(apart)
    return kept


# Media columns about the bytes, which a strategy fills (`ImageBytes.column`): never copied as they are.
BYTES_COLUMNS = ("data", "size", "sha256")


def media_columns(media: ImageBytes) -> list[str]:
    return [name.strip() for name in media.column.split(",") if name.strip()]


def same_place(a: ImageBytes, b: ImageBytes) -> bool:
    """Whether two strategies keep bytes in the same place (one object store named twice)."""
    return isinstance(a, ObjectBytes) and isinstance(b, ObjectBytes) and a.config == b.config


async def copy_files_to_objects(source: SqliteStore, target: ObjectBytes) -> Copied:
    """Move the images a SQLite store keeps as files into an object store, recording each one's size
    and hash in its row: after it, the store opened with that object store (HIDREAM_MEDIA_URL) holds
    every image. A file is deleted once its object is written and its row says so; a rerun after a
    failure goes on where it stopped (an image whose file is gone but whose object is there counts as
    moved already)."""
    copied = Copied()
    ids = [str(row[0]) for row in await source.database.fetch("SELECT id FROM media ORDER BY rowid")]
    for start in range(0, len(ids), IMAGES_PER_BATCH):
        batch: dict[str, bytes] = {}
        for media_id in ids[start : start + IMAGES_PER_BATCH]:
            data = await source.files.read(media_id)
            if data is not None:
                batch[media_id] = data
            elif await target.has(media_id):
                copied.images += 1
            else:
                copied.missing_images += 1
        await target.keep(batch)
        async with source.database.transaction() as db:
            for media_id, data in batch.items():
                await db.execute(
                    "UPDATE media SET size=?, sha256=? WHERE id=?", *target.in_row(data), media_id
                )
        await source.files.delete(batch)
        copied.images += len(batch)
        copied.image_bytes += sum(len(data) for data in batch.values())
    copied.rows["media"] = len(ids)
    return copied


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

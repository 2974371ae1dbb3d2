"""Copying the rows of a SQLite store into an empty PostgreSQL store, in one transaction on the target.

Tables are copied by name and by the columns both sides have, so a column or table one side has and
the other has not yet (a newer schema on one of them) is left out rather than breaking the copy; the
values are converted to the target column's type where PostgreSQL is stricter than SQLite (0/1 as
BOOLEAN, integers in DOUBLE PRECISION columns). Image bytes are read through the SQLite store's own
`media()`, wherever it keeps them; the media table only lists the images and their metadata.

Nothing else may write to the SQLite database meanwhile (the bot is stopped for the copy): its rows
are read as they are, table after table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

# The store's own bookkeeping: each side migrated itself on opening.
_NOT_COPIED = frozenset({"schema_version"})
# The known tables in a readable order (nothing references another by a foreign key); any other table
# both sides have (one a newer schema added) follows, by name.
_ORDER = (
    "meta",
    "jobs",
    "ledger",
    "limits",
    "grants",
    "budgets",
    "posts",
    "slack_installations",
    "slack_oauth_states",
    "media",
)
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


@dataclass(frozen=True)
class _Source:
    """A SQLite table: its columns, in their order, and whether it has a rowid (the order of writing)."""

    columns: list[str]
    has_rowid: bool


@dataclass(frozen=True)
class _Target:
    """A target table: its columns' types, its primary key, and the columns PostgreSQL numbers itself."""

    types: dict[str, str]
    key: tuple[str, ...]
    generated: frozenset[str]


async def copy_sqlite_to_postgres(source: SqliteStore, target: PostgresStore) -> Copied:
    """Copy every table both stores have. Raises TargetNotEmpty when the target holds any job, and
    CopyFailed (the target unchanged) when a table cannot be written."""
    sources = await _sqlite_tables(source)
    copied = Copied()
    async with target.transaction() as db:
        # Held to the end: a bot starting on the target meanwhile cannot add a job under the copy.
        await db.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
        held = int(await db.fetchval("SELECT count(*) FROM jobs"))
        if held:
            raise TargetNotEmpty(held)
        targets = await _postgres_tables(db)
        for table in _in_order(sources.keys() & targets.keys()):
            try:
                copied.rows[table] = await _copy_table(
                    source, db, table, sources[table], targets[table], copied
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError, TypeError) as exc:
                raise CopyFailed(table, exc) from exc
    return copied


def _in_order(tables: Iterable[str]) -> list[str]:
    wanted = set(tables) - _NOT_COPIED
    return [t for t in _ORDER if t in wanted] + sorted(wanted - set(_ORDER))


async def _sqlite_tables(store: SqliteStore) -> dict[str, _Source]:
    async with store.db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    ) as cur:
        tables = [(str(r[0]), str(r[1])) for r in await cur.fetchall()]
    found: dict[str, _Source] = {}
    for name, sql in tables:
        async with store.db.execute(f'PRAGMA table_info("{name}")') as cur:
            columns = [str(r[1]) for r in await cur.fetchall()]
        found[name] = _Source(columns, "WITHOUT ROWID" not in sql.upper())
    return found


async def _postgres_tables(db: Any) -> dict[str, _Target]:
    columns = await db.fetch(
        "SELECT c.table_name, c.column_name, c.data_type, c.column_default, c.is_identity "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' ORDER BY c.ordinal_position"
    )
    keys = await db.fetch(
        "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
        "JOIN information_schema.key_column_usage k "
        "ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name "
        "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() "
        "ORDER BY k.ordinal_position"
    )
    types: dict[str, dict[str, str]] = {}
    generated: dict[str, set[str]] = {}
    for row in columns:
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
        numbered = str(row["column_default"] or "").startswith("nextval(") or row["is_identity"] == "YES"
        if numbered:
            generated.setdefault(row["table_name"], set()).add(row["column_name"])
    key: dict[str, list[str]] = {}
    for row in keys:
        key.setdefault(row["table_name"], []).append(row["column_name"])
    return {
        name: _Target(cols, tuple(key.get(name, ())), frozenset(generated.get(name, ())))
        for name, cols in types.items()
    }


async def _copy_table(
    source: SqliteStore, db: Any, table: str, read: _Source, target: _Target, copied: Copied
) -> int:
    columns = read.columns
    # Serial ids (grants.id) are PostgreSQL's to number: rows go in in the source's order, so they
    # number the same way, and the sequence stays ahead of them.
    shared = [c for c in columns if c in target.types and c not in target.generated]
    images = table == "media" and "id" in columns
    if images:
        # The bytes come from the store's media(), wherever the store now keeps them.
        shared = [c for c in shared if c != "data"]
    names = [*shared, "data"] if images and "data" in target.types else shared
    if not shared:
        return 0  # no column in common: nothing to say about these rows
    insert = _insert_sql(table, names, target)
    convert = [_converter(target.types[c]) for c in names]
    count = 0
    # In the order they were written (posts_of lists a job's posts so); a table without a rowid is
    # read in its key's order.
    order = " ORDER BY rowid" if read.has_rowid else ""
    select = f'SELECT {", ".join(_quoted(c) for c in shared)} FROM "{table}"{order}'
    async with source.db.execute(select) as cur:
        while rows := await cur.fetchmany(IMAGES_PER_BATCH if images else ROWS_PER_BATCH):
            values = [list(row) for row in rows]
            if images:
                values = await _with_bytes(source, values, shared.index("id"), "data" in names, copied)
            await db.executemany(
                insert, [[f(v) for f, v in zip(convert, row, strict=True)] for row in values]
            )
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


def _insert_sql(table: str, names: list[str], target: _Target) -> str:
    """An INSERT of `names`; on a primary key the target has already (a row a trial start made, such as
    the media-links secret), the SQLite row replaces it: links signed before the move stay valid."""
    sql = (
        f'INSERT INTO "{table}" ({", ".join(_quoted(c) for c in names)}) '
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(names) + 1))})"
    )
    if not target.key or not set(target.key) <= set(names):
        return sql
    others = [c for c in names if c not in target.key]
    conflict = f" ON CONFLICT ({', '.join(_quoted(c) for c in target.key)}) DO "
    if not others:
        return sql + conflict + "NOTHING"
    return sql + conflict + "UPDATE SET " + ", ".join(f"{_quoted(c)}=excluded.{_quoted(c)}" for c in others)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, int) else value


def _as_bytes(value: Any) -> Any:
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


# Only the conversions that lose nothing: a value of any other kind goes as read, and a column that
# cannot take it fails the copy (rolled back) instead of being stored as something else.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "boolean": _as_bool,
    "double precision": _as_float,
    "real": _as_float,
    "bigint": _as_int,
    "integer": _as_int,
    "smallint": _as_int,
    "bytea": _as_bytes,
}


def _converter(pg_type: str) -> Callable[[Any], Any]:
    """SQLite's value as the PostgreSQL column's type wants it; NULL stays NULL."""
    return _CONVERT.get(pg_type, lambda value: value)

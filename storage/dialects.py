"""What differs in the SQL text of the two databases, and nothing else: every query of the store is
written once, in SQLite's words with `?` placeholders, and a dialect turns it into its database's.

- placeholders: `?` stays for SQLite, becomes $1, $2, ... for PostgreSQL;
- list parameters: `IN (?, ?, ...)` with one parameter a value for SQLite, `= ANY(?::text[])` with
  one array parameter for PostgreSQL (so a statement's text does not change with the list's length);
- JSON arrays kept as text, expanded as rows (`json_each` / `json_array_elements_text`);
- the lock admission takes on a tenant (and on a person): none in SQLite (one writer at a time already), a
  transaction-scoped advisory lock in PostgreSQL;
- the order rows were inserted in (`rowid` / a `seq` column);
- types, for the migrations: they are written in SQLite's types and substituted for PostgreSQL.
`RETURNING` and `ON CONFLICT ... DO UPDATE/NOTHING` are spoken by both as they are.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

# Namespaces (first keys) of the per-tenant and per-person transaction locks that make admission atomic.
TENANT_LOCK = 0x6864
PERSON_LOCK = 0x6865
# The key of the advisory lock held while migrating (any fixed number no other lock here uses).
MIGRATION_LOCK = 0x68494472_65616D01


class Dialect:
    name = "sqlite"
    # The column that orders a table's rows as they were inserted.
    insertion_order = "rowid"
    # Statements run inside admission's transaction, before it reads the tenant's counts.
    tenant_lock: str | None = None
    # Claims by replicas at the same moment take different rows instead of waiting on each other.
    skip_locked = ""

    def sql(self, text: str) -> str:
        return text

    def among(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        """`column` is one of `values`: the condition and its parameters."""
        items = [getattr(v, "value", v) for v in values]
        return f"{column} IN ({','.join('?' * len(items))})", items

    def json_items(self, column: str, alias: str) -> str:
        """A FROM item that yields the elements of the JSON array in `column` as `alias.value`."""
        return f"json_each({column}) {alias}"

    def unindexed(self, column: str) -> str:
        """`column` in a condition the planner should not pick an index for."""
        return f"+{column}"

    def types(self, script: str) -> str:
        return script


class PostgresDialect(Dialect):
    name = "postgres"
    insertion_order = "seq"
    tenant_lock = "SELECT pg_advisory_xact_lock(?, hashtext(?))"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    # SQLite's types in the migrations, as PostgreSQL's (the columns the PostgreSQL store has always had).
    _TYPES = (
        (r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY"),
        (r"\bREAL\b", "DOUBLE PRECISION"),
        (r"\bBLOB\b", "BYTEA"),
        (r"\bnsfw INTEGER NOT NULL DEFAULT 0\b", "nsfw BOOLEAN NOT NULL DEFAULT FALSE"),
        (r"\b(seed|bot_token_expires_at) INTEGER\b", r"\1 BIGINT"),
        (r"CREATE TABLE posts \(", "CREATE TABLE posts (seq BIGSERIAL, "),
    )

    def sql(self, text: str) -> str:
        # The SQL given here has no `?` inside a literal.
        count = iter(range(1, text.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(count)}", text)

    def among(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?::text[])", [[getattr(v, "value", v) for v in values]]

    def json_items(self, column: str, alias: str) -> str:
        return f"json_array_elements_text({column}::json) AS {alias}(value)"

    def unindexed(self, column: str) -> str:
        return column

    def types(self, script: str) -> str:
        for pattern, replacement in self._TYPES:
            script = re.sub(pattern, replacement, script)
        return script

"""Saved subjects: up to four of the bot's own images kept under a name, per tenant (a server or
workspace; a DM or the console: its user). The images are media ids in the store; retention spares
every image a subject names, and deletes a subject unused for long with its images
(storage/retention.py). Each tenant's subjects are bounded in number and in the bytes of their
images: `add` checks both under the tenant's lock, so saves at the same moment cannot pass them
together. The same SQL runs on both store backends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from storage.dialects import TENANT_LOCK
from storage.store import Store

_COLUMNS = "tenant, name, name_key, creator, media, created_at, bytes, used_at"
Added = Literal["added", "taken", "count", "bytes"]


@dataclass(frozen=True)
class Subject:
    tenant: str
    name: str
    # Who saved it, as the quota's user key (`surface:user`): they may delete it.
    creator: str
    media: list[str] = field(default_factory=list)
    created_at: float = 0.0
    # The bytes of its images; None for one saved before they were counted, until measured.
    bytes: int | None = None
    used_at: float = 0.0

    @property
    def key(self) -> str:
        return self.name.lower()


def _subject(row: tuple[Any, ...]) -> Subject:
    media, created_at = json.loads(row[4]), float(row[5])
    size = None if row[6] is None else int(row[6])
    used_at = created_at if row[7] is None else float(row[7])
    return Subject(row[0], row[1], row[3], media, created_at, size, used_at)


@dataclass(frozen=True)
class Usage:
    subjects: int
    bytes: int


class Subjects:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, subject: Subject) -> bool:
        """Keep `subject`, with no bound; False (nothing changed) when its name is taken."""
        return await self.add_within(subject, max_count=2**62, max_bytes=2**62) == "added"

    async def add_within(self, subject: Subject, *, max_count: int, max_bytes: int) -> Added:
        """Keep `subject` unless its tenant has one of that name in any case ("taken"), already has
        `max_count` subjects ("count"), or would pass `max_bytes` with it ("bytes")."""
        now = float(subject.created_at or self.store.now())
        async with self.store.database.transaction() as db:
            if db.dialect.tenant_lock is not None:
                await db.execute(db.dialect.tenant_lock, TENANT_LOCK, subject.tenant)
            row = await db.fetchrow(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COUNT(*) FILTER (WHERE name_key=?) "
                "FROM subjects WHERE tenant=?",
                subject.key,
                subject.tenant,
            )
            assert row is not None
            if int(row[2]):
                return "taken"
            if int(row[0]) >= max_count:
                return "count"
            if int(row[1]) + (subject.bytes or 0) > max_bytes:
                return "bytes"
            await db.execute(
                f"INSERT INTO subjects ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                *(subject.tenant, subject.name, subject.key, subject.creator, json.dumps(subject.media)),
                *(now, subject.bytes or 0, now),
            )
        return "added"

    async def usage(self, tenant: str) -> Usage:
        row = await self.store.database.fetchrow(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM subjects WHERE tenant=?", tenant
        )
        return Usage(0, 0) if row is None else Usage(int(row[0]), int(row[1]))

    async def unmeasured(self, tenant: str) -> list[Subject]:
        rows = await self.store.database.fetch(
            f"SELECT {_COLUMNS} FROM subjects WHERE tenant=? AND bytes IS NULL", tenant
        )
        return [_subject(row) for row in rows]

    async def measured(self, subject: Subject, size: int) -> None:
        await self.store.write(
            "UPDATE subjects SET bytes=? WHERE tenant=? AND name_key=?", size, subject.tenant, subject.key
        )

    async def used(self, tenant: str, keys: list[str]) -> None:
        """Mark subjects as used now (retention deletes those unused for long)."""
        among, args = self.store.database.dialect.among("name_key", keys)
        await self.store.write(
            f"UPDATE subjects SET used_at=? WHERE tenant=? AND {among}", self.store.now(), tenant, *args
        )

    async def forget_media(self, media_ids: list[str]) -> None:
        """Delete images stored for a save that was then refused (their rows, then their bytes)."""
        among, args = self.store.database.dialect.among("id", media_ids)
        async with self.store.database.transaction() as db:
            rows = await db.fetch(f"DELETE FROM media WHERE {among} RETURNING id", *args)
        await self.store.media_bytes.drop([str(row[0]) for row in rows])

    async def find(self, tenant: str, name: str) -> Subject | None:
        row = await self.store.database.fetchrow(
            f"SELECT {_COLUMNS} FROM subjects WHERE tenant=? AND name_key=?", tenant, name.lower()
        )
        return None if row is None else _subject(row)

    async def all(self, tenant: str) -> list[Subject]:
        rows = await self.store.database.fetch(
            f"SELECT {_COLUMNS} FROM subjects WHERE tenant=? ORDER BY name_key", tenant
        )
        return [_subject(row) for row in rows]

    async def delete(self, tenant: str, name: str) -> bool:
        gone = await self.store.write(
            "DELETE FROM subjects WHERE tenant=? AND name_key=?", tenant, name.lower()
        )
        return gone == 1

"""Saved subjects: up to four of the bot's own images kept under a name, per tenant (a server or
workspace; a DM or the console: its user). The images are media ids in the store; retention spares
every image a subject names (storage/retention.py, storage/postgres_retention.py). The same SQL
runs on both store backends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage.store import Store

_COLUMNS = "tenant, name, name_key, creator, media, created_at"


@dataclass(frozen=True)
class Subject:
    tenant: str
    name: str
    # Who saved it, as the quota's user key (`surface:user`): they may delete it.
    creator: str
    media: list[str] = field(default_factory=list)
    created_at: float = 0.0

    @property
    def key(self) -> str:
        return self.name.lower()


def _subject(row: tuple[Any, ...]) -> Subject:
    return Subject(tenant=row[0], name=row[1], creator=row[3], media=json.loads(row[4]), created_at=row[5])


class Subjects:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, subject: Subject) -> bool:
        """Keep `subject`; False (nothing changed) when its tenant has one of that name in any case."""
        added = await self.store.write(
            f"INSERT INTO subjects ({_COLUMNS}) VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, name_key) DO NOTHING",
            subject.tenant,
            subject.name,
            subject.key,
            subject.creator,
            json.dumps(subject.media),
            float(subject.created_at or self.store.now()),
        )
        return added == 1

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

"""Sets of jobs waiting for their requester's confirmation (a set of more than a few jobs is confirmed
before anything is spent): held as JSON under an unguessable id, taken once, by the person who asked,
in the tenant they asked in; those older than their lifetime are never handed out and are swept."""

from __future__ import annotations

import secrets

from storage.connections import fetchval
from storage.store import Store


class PendingSets:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def hold(
        self, surface: str, tenant: str, user_id: str, payload: str, max_age: float | None = None
    ) -> str:
        """Keep a set's requests; its id, which the confirmation names. Sets older than `max_age`
        seconds, never confirmed, are swept on the way."""
        set_id = secrets.token_hex(16)
        now = self.store.now()
        async with self.store.database.transaction() as db:
            if max_age is not None:
                await db.execute("DELETE FROM pending_sets WHERE created_at < ?", now - max_age)
            await db.execute(
                "INSERT INTO pending_sets (id, surface, tenant, user_id, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                *(set_id, surface, tenant, user_id, payload, now),
            )
        return set_id

    async def take(self, set_id: str, surface: str, tenant: str, user_id: str, max_age: float) -> str | None:
        """The set's requests, removed so that a second confirmation makes nothing; None when there is
        no such set of this person's in this tenant, or it is older than `max_age` seconds."""
        now = self.store.now()
        async with self.store.database.transaction() as db:
            await db.execute("DELETE FROM pending_sets WHERE created_at < ?", now - max_age)
            payload = await fetchval(
                db,
                "SELECT payload FROM pending_sets WHERE id=? AND surface=? AND tenant=? AND user_id=?",
                *(set_id, surface, tenant, user_id),
            )
            if payload is None:
                return None
            taken = await db.execute("DELETE FROM pending_sets WHERE id=?", set_id)
        return str(payload) if taken == 1 else None

    async def owner(self, set_id: str) -> tuple[str, str, str] | None:
        """Who a waiting set belongs to (surface, tenant, user), to tell someone else it is not theirs."""
        row = await self.store.database.fetchrow(
            "SELECT surface, tenant, user_id FROM pending_sets WHERE id=?", set_id
        )
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

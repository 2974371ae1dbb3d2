"""Values the bot makes once and keeps in its database's `meta` table (as `Store.secret` keeps the key
of media links): the certificate authority of its content credentials (bot/jobs/credentials.py).
Every replica on the database uses the same one, whichever made it."""

from __future__ import annotations

from storage.connections import fetchval
from storage.store import Store


async def keep_once(store: Store, name: str, value: str) -> str:
    """The value kept under `name`: `value` when none was, else the one kept before (of two processes
    keeping one at once, the first wins)."""
    async with store.database.transaction() as db:
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", name, value
        )
        return str(await fetchval(db, "SELECT value FROM meta WHERE key=?", name))


async def kept(store: Store, name: str) -> str | None:
    value = await fetchval(store.database, "SELECT value FROM meta WHERE key=?", name)
    return None if value is None else str(value)


async def replace_kept(store: Store, name: str, old: str, new: str) -> bool:
    """Keep `new` under `name` if `old` is still what is kept there; whether it was."""
    return await store.write("UPDATE meta SET value=? WHERE key=? AND value=?", new, name, old) == 1

"""Style kits, per tenant: a named prompt prefix and suffix, a negative prompt, a saved subject and
default flags, kept in versions. Saving a name again adds its next version; deleting hides the name
(and unbinds it), but every version stays, so a job that used one still says which. A channel may be
bound to a kit by name: its newest version applies to every request there. The rules that use them
live in bot/jobs/kits.py; the same SQL runs on both store backends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from storage.dialects import TENANT_LOCK
from storage.store import Store

_COLUMNS = "tenant, name, version, prefix, suffix, negative, subject, flags, created_by, created_at"


@dataclass(frozen=True)
class Kit:
    tenant: str
    name: str
    version: int = 0  # given by `save`
    prefix: str = ""
    suffix: str = ""
    negative: str = ""
    subject: str = ""
    # Flag name -> value as typed (e.g. {"ar": "16:9", "model": "full"}).
    flags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    created_at: float = 0.0

    @property
    def key(self) -> str:
        return self.name.lower()


def _kit(row: Any) -> Kit:
    flags = {str(k): str(v) for k, v in json.loads(row[7]).items()}
    return Kit(
        *(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6])),
        flags=flags,
        created_by=str(row[8]),
        created_at=float(row[9]),
    )


class Kits:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(self, kit: Kit) -> Kit:
        """Keep `kit` as its name's next version (1 for a new name, or one deleted and saved again)."""
        now = float(kit.created_at or self.store.now())
        async with self.store.database.transaction() as db:
            if db.dialect.tenant_lock is not None:
                await db.execute(db.dialect.tenant_lock, TENANT_LOCK, kit.tenant)
            row = await db.fetchrow(
                "SELECT COALESCE(MAX(version), 0) FROM kits WHERE tenant=? AND name_key=?",
                kit.tenant,
                kit.key,
            )
            version = (int(row[0]) if row is not None else 0) + 1
            await db.execute(
                f"INSERT INTO kits ({_COLUMNS}, name_key, deleted) VALUES (?,?,?,?,?,?,?,?,?,?,?,0)",
                *(kit.tenant, kit.name, version, kit.prefix, kit.suffix, kit.negative, kit.subject),
                *(json.dumps(kit.flags, sort_keys=True), kit.created_by, now, kit.key),
            )
        return replace(kit, version=version, created_at=now)

    async def find(self, tenant: str, name: str) -> Kit | None:
        """The newest version of a kit of that name (any case) in `tenant`, unless it was deleted."""
        row = await self.store.database.fetchrow(
            f"SELECT {_COLUMNS} FROM kits WHERE tenant=? AND name_key=? AND deleted=0 "
            "ORDER BY version DESC LIMIT 1",
            tenant,
            name.lower(),
        )
        return None if row is None else _kit(row)

    async def version(self, tenant: str, name: str, version: int) -> Kit | None:
        """One version as it was saved, deleted or not (for history)."""
        row = await self.store.database.fetchrow(
            f"SELECT {_COLUMNS} FROM kits WHERE tenant=? AND name_key=? AND version=?",
            tenant,
            name.lower(),
            version,
        )
        return None if row is None else _kit(row)

    async def all(self, tenant: str) -> list[Kit]:
        """Each kit of `tenant` not deleted, at its newest version, by name."""
        rows = await self.store.database.fetch(
            f"SELECT {_COLUMNS} FROM kits k WHERE tenant=? AND deleted=0 AND version = "
            "(SELECT MAX(version) FROM kits o WHERE o.tenant=k.tenant AND o.name_key=k.name_key) "
            "ORDER BY name_key",
            tenant,
        )
        return [_kit(row) for row in rows]

    async def delete(self, tenant: str, name: str) -> bool:
        """Hide the name (its versions stay) and unbind it from every channel; False when none was."""
        async with self.store.database.transaction() as db:
            hidden = await db.execute(
                "UPDATE kits SET deleted=1 WHERE tenant=? AND name_key=? AND deleted=0", tenant, name.lower()
            )
            await db.execute("DELETE FROM kit_bindings WHERE tenant=? AND name_key=?", tenant, name.lower())
        return hidden > 0

    async def bind(self, tenant: str, channel: str, name: str | None) -> None:
        """Bind the channel to the kit `name` (its newest version each time), or unbind it (None)."""
        if name is None:
            await self.store.write("DELETE FROM kit_bindings WHERE tenant=? AND channel=?", tenant, channel)
            return
        await self.store.write(
            "INSERT INTO kit_bindings (tenant, channel, name_key, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, channel) DO UPDATE SET name_key=excluded.name_key, "
            "updated_at=excluded.updated_at",
            *(tenant, channel, name.lower(), self.store.now()),
        )

    async def bound(self, tenant: str, channel: str) -> Kit | None:
        """The kit the channel is bound to, at its newest version; None when it is bound to none."""
        row = await self.store.database.fetchrow(
            "SELECT name_key FROM kit_bindings WHERE tenant=? AND channel=?", tenant, channel
        )
        return None if row is None else await self.find(tenant, str(row[0]))


async def kits_in_use(store: Store) -> list[dict[str, object]]:
    """The operators' page's list (and `/admin/api/kits`): every tenant's kits, each at its newest
    version, with who saved it, when, and how many channels are bound to it. Prefixes and suffixes
    are left out: they are prompts, which a tenant may keep from the operators (`export-prompts`)."""
    kits = await store.database.fetch(
        "SELECT tenant, name, version, created_by, created_at, name_key FROM kits k WHERE deleted=0 "
        "AND version = (SELECT MAX(version) FROM kits o WHERE o.tenant=k.tenant AND o.name_key=k.name_key) "
        "ORDER BY tenant, name_key"
    )
    bound = await store.database.fetch(
        "SELECT tenant, name_key, COUNT(*) FROM kit_bindings GROUP BY tenant, name_key"
    )
    channels = {(str(r[0]), str(r[1])): int(r[2]) for r in bound}
    return [
        {
            "tenant": str(r[0]),
            "kit": str(r[1]),
            "version": int(r[2]),
            "saved_by": str(r[3]),
            "saved_at": float(r[4]),
            "bound_channels": channels.get((str(r[0]), str(r[5])), 0),
        }
        for r in kits
    ]

"""Costs by channel and project, in the store: each channel's default project (per tenant, set by its
admins) and what the operators' page and `hidream-bot report` show, images and dollars grouped by
tenant, channel, project, person or provider over a date range. A project's budget and its month's
spend are storage/quota.py's, beside the tenant's, since admission checks them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.model.jobs import SPENT
from storage.store import Store

By = Literal["tenant", "channel", "project", "person", "provider"]
BY: tuple[By, ...] = ("tenant", "channel", "project", "person", "provider")
# What each grouping reads: a channel and a person are named within their tenant.
_GROUPS: dict[str, tuple[str, ...]] = {
    "tenant": ("l.workspace_key",),
    "channel": ("l.workspace_key", "j.channel"),
    "project": ("l.workspace_key", "l.project"),
    "person": ("l.workspace_key", "l.user_key"),
    "provider": ("j.provider",),
}


class ChannelProjects:
    """A channel's default project in its tenant: requests there that name none count under it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, tenant: str, channel: str) -> str | None:
        row = await self.store.database.fetchrow(
            "SELECT project FROM channel_projects WHERE tenant=? AND channel=?", tenant, channel
        )
        return None if row is None else str(row[0])

    async def set(self, tenant: str, channel: str, project: str | None) -> None:
        if project is None:
            await self.store.write(
                "DELETE FROM channel_projects WHERE tenant=? AND channel=?", tenant, channel
            )
            return
        await self.store.write(
            "INSERT INTO channel_projects (tenant, channel, project, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, channel) DO UPDATE SET project=excluded.project, updated_at=excluded.updated_at",
            *(tenant, channel, project, self.store.now()),
        )


@dataclass(frozen=True)
class CostRow:
    """One group's images and dollars spent (delivered, and so charged) in a date range."""

    tenant: str  # empty when grouped by provider (across tenants)
    key: str  # the channel, project, person or provider; the tenant itself when grouped by tenant
    images: int
    usd: float
    jobs: int

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "key": self.key,
            "images": self.images,
            "usd": round(self.usd, 4),
            "jobs": self.jobs,
        }


async def costs(store: Store, by: By, *, since: str, until: str, tenant: str | None = None) -> list[CostRow]:
    """Images and dollars spent per group from the UTC day `since` to `until` (both YYYY-MM-DD,
    included), the most spent first; one tenant's only when `tenant` is given."""
    if by not in _GROUPS:
        raise ValueError(f"unknown grouping {by!r}")
    columns = _GROUPS[by]
    spent, args = store.database.dialect.among("l.state", SPENT)
    where = f"l.day >= ? AND l.day <= ? AND {spent}"
    params: list[Any] = [since, until, *args]
    if tenant is not None:
        where += " AND l.workspace_key = ?"
        params.append(tenant)
    group = ", ".join(columns)
    rows = await store.database.read_apart(
        f"SELECT {group}, SUM(l.images), SUM(l.cost_usd), COUNT(*) FROM ledger l JOIN jobs j ON j.id = l.job_id "
        f"WHERE {where} GROUP BY {group} ORDER BY {len(columns) + 2} DESC, {len(columns) + 1} DESC, {group}",
        *params,
    )
    found = []
    for row in rows:
        names = [str(v) for v in row[: len(columns)]]
        owner = names[0] if by not in ("provider",) else ""
        key = names[-1]
        found.append(CostRow(owner, key, int(row[-3]), float(row[-2]), int(row[-1])))
    return found

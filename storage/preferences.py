"""Personal defaults, per (tenant, user), and each tenant's policy (blocked phrases, NSFW handling,
tier, provider, and whether the audit export withholds its prompts, prompts in content credentials). Small rows in the same SQL for both store backends; the rules
that use them live in bot/jobs/preferences.py."""

from __future__ import annotations

import json
from dataclasses import dataclass

from storage.store import Store

_UPSERT_DEFAULTS = (
    "INSERT INTO user_defaults (tenant, user_key, flags, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (tenant, user_key) DO UPDATE SET flags=excluded.flags, updated_at=excluded.updated_at"
)
_POLICY_COLUMNS = "banned, nsfw, tier, provider, withhold_prompts, credentials_prompt"
_UPSERT_POLICY = (
    f"INSERT INTO tenant_policy (tenant, {_POLICY_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant) DO UPDATE SET banned=excluded.banned, nsfw=excluded.nsfw, "
    "tier=excluded.tier, provider=excluded.provider, withhold_prompts=excluded.withhold_prompts, "
    "credentials_prompt=excluded.credentials_prompt, "
    "updated_at=excluded.updated_at"
)


@dataclass(frozen=True)
class TenantPolicy:
    """What a server's or workspace's admins set; None: the operator's default holds."""

    banned: tuple[str, ...] = ()
    nsfw: str | None = None
    tier: str | None = None
    provider: str | None = None
    # Whether the operators' audit export leaves this tenant's prompts out (storage/audit.py).
    withhold_prompts: bool = False
    # Whether its prompts are written into its images' content credentials (C2PA); off by default.
    credentials_prompt: bool = False


class Preferences:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def defaults(self, tenant: str, user_key: str) -> dict[str, str]:
        """Flag name -> value as typed (e.g. {"ar": "16:9", "n": "2", "private": "on"})."""
        row = await self.store.database.fetchrow(
            "SELECT flags FROM user_defaults WHERE tenant=? AND user_key=?", tenant, user_key
        )
        return {} if row is None else {str(k): str(v) for k, v in json.loads(row[0]).items()}

    async def set_defaults(self, tenant: str, user_key: str, flags: dict[str, str]) -> None:
        """Keep `flags` as the user's defaults in the tenant; an empty dict forgets them."""
        if not flags:
            await self.store.write(
                "DELETE FROM user_defaults WHERE tenant=? AND user_key=?", tenant, user_key
            )
            return
        await self.store.write(
            _UPSERT_DEFAULTS, tenant, user_key, json.dumps(flags, sort_keys=True), self.store.now()
        )

    async def policy(self, tenant: str) -> TenantPolicy:
        row = await self.store.database.fetchrow(
            f"SELECT {_POLICY_COLUMNS} FROM tenant_policy WHERE tenant=?", tenant
        )
        if row is None:
            return TenantPolicy()
        return TenantPolicy(tuple(json.loads(row[0])), row[1], row[2], row[3], bool(row[4]), bool(row[5]))

    async def set_policy(self, tenant: str, policy: TenantPolicy) -> None:
        if policy == TenantPolicy():
            await self.store.write("DELETE FROM tenant_policy WHERE tenant=?", tenant)
            return
        await self.store.write(
            _UPSERT_POLICY,
            tenant,
            json.dumps(list(policy.banned)),
            policy.nsfw,
            policy.tier,
            policy.provider,
            int(policy.withhold_prompts),
            int(policy.credentials_prompt),
            self.store.now(),
        )

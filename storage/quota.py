"""Quotas in the store, scoped to tenants (a server, a workspace, or a DM / the console of one user):
the facts a quota decision is made of (the limits set, the counts of a day and a month, grants,
ceilings, budgets, when each resets) and the writes that set them. Which limit applies, whether a
charge is admitted, which amounts may be set and every sentence about them are the core's
(bot/jobs/quota_policy.py), given to the store as its `QuotaRules`; the store applies them inside
the transaction that charges, under the tenant's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.model.jobs import COUNTED, SPENT, LedgerState
from storage.connections import Database, Queries

# "admin_max": the highest limit a tenant's admins may give a member there (an operator's, per tenant).
Scope = Literal["user", "members", "ceiling", "admin_max"]
By = Literal["operator", "admin"]
# Every tenant: an operator's limit for a user that holds in all of them.
EVERY_TENANT = "*"
# Made or reserved, reset or not: what a tenant's ceiling counts in a day and its budget in a month.
MADE = (LedgerState.RESERVED, LedgerState.COMMITTED, LedgerState.RESET)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def next_reset(ts: float) -> datetime:
    day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


@dataclass(frozen=True)
class QuotaStatus:
    used: int
    limit: int
    remaining: int
    resets_at: datetime
    now: float
    # Where the base limit comes from, and today's grants on top of it.
    source: str = "default"
    granted: int = 0
    # The tenant's ceiling and what its members made today, when it has one.
    ceiling: int | None = None
    tenant_used: int = 0
    # The tenant's monthly budget and this month's spend, when it has one.
    budget_usd: float | None = None
    month_spent_usd: float = 0.0
    # Whether the operator lets people see dollars (HIDREAM_SHOW_SPEND).
    show_spend: bool = False
    # What the user made today in the tenant, resets included, and the most the tenant's admins may
    # let a member make there in a day (a member's own operator limit or grants may be higher).
    made: int = 0
    admin_max: int | None = None
    # The cap on one person's images a day across every tenant, and what they made today in all.
    person_quota: int | None = None
    person_used: int = 0
    # An operator set this person's daily limit to 0 (how the moderation view blocks someone) and
    # nothing was granted on top: they are told they are blocked, not that they used all 0 images.
    blocked: bool = False


@dataclass(frozen=True)
class QuotaFacts:
    """A user's quota in a tenant as the store holds it."""

    now: float
    # Limits that may apply, (tenant, scope, set_by) -> daily limit: the user's own (in this tenant or
    # every tenant), the members' default and the ceiling of this tenant.
    limits: dict[tuple[str, str, str], int]
    used: int  # the user's images today in the tenant (reserved or made)
    made: int  # the same, resets included
    granted: int  # granted to the user today in the tenant
    tenant_used: int  # every image the tenant reserved or made today, reset or not
    budget_usd: float | None
    month_spent_usd: float  # reserved or made this UTC month in the tenant
    resets_at: datetime  # when the day's counts start again
    # The operator's settings: a user's daily images where nobody set a limit, a tenant's where no
    # operator set a ceiling (None: no ceiling), the highest limit admins may set where no operator
    # said otherwise, and one person's cap across every tenant (None: none).
    default_limit: int
    default_ceiling: int | None
    default_admin_max: int
    person_quota: int | None = None
    person_used: int = 0  # the person's images today in every tenant, resets included


class QuotaRules(Protocol):
    """The core's quota policy (bot/jobs/quota_policy.py)."""

    def status(self, user_key: str, tenant: str, facts: QuotaFacts) -> QuotaStatus: ...

    def refusal(self, status: QuotaStatus, charge: Charge) -> Exception | None:
        """Why `charge` cannot be admitted, or None when it can."""
        ...

    def over_budget(self, status: QuotaStatus, more_usd: float) -> bool:
        """Whether `more_usd` on top of the month's spend would pass the tenant's budget."""
        ...

    def grant_refusal(self, status: QuotaStatus, images: int) -> Exception | None:
        """Why a tenant admin may not grant `images` more today, or None when they may."""
        ...

    def project_refusal(self, month: ProjectMonth, cost_usd: float) -> Exception | None:
        """Why a job of `cost_usd` cannot be counted under a project whose month is `month`, or None."""
        ...


@dataclass(frozen=True)
class Charge:
    """What a job asks of its tenant: images today and dollars this month."""

    user_key: str
    tenant: str
    images: int
    cost_usd: float
    # The project the job is counted under (empty: none), whose own budget it must fit too.
    project: str = ""
    # How many jobs ask for these images together (a set): what a refusal tells them to ask fewer of.
    jobs: int = 1


@dataclass(frozen=True)
class ProjectMonth:
    """A project's monthly budget in its tenant (None: it has none) and what it reserved or spent
    this UTC month."""

    tenant: str
    project: str
    budget_usd: float | None
    spent_usd: float
    now: float


async def project_month(db: Queries, tenant: str, project: str, now: float) -> ProjectMonth:
    made, args = db.dialect.among("state", MADE)
    row = await db.fetchrow(
        "SELECT (SELECT monthly_usd FROM project_budgets WHERE tenant=? AND project=?), "
        "(SELECT COALESCE(SUM(cost_usd), 0) FROM ledger "
        f"WHERE workspace_key=? AND project=? AND substr(day, 1, 7)=? AND {made})",
        *(tenant, project, tenant, project, utc_day(now)[:7], *args),
    )
    budget = None if row[0] is None else float(row[0])
    return ProjectMonth(tenant, project, budget, float(row[1]), now)


_COUNTS = """
SELECT
  (SELECT COALESCE(SUM(images), 0) FROM ledger
     WHERE workspace_key=? AND user_key=? AND day=? AND {counted}) AS used,
  (SELECT COALESCE(SUM(images), 0) FROM grants WHERE tenant=? AND user_key=? AND day=?) AS granted,
  (SELECT COALESCE(SUM(images), 0) FROM ledger WHERE workspace_key=? AND day=? AND {made}) AS tenant_used,
  (SELECT monthly_usd FROM budgets WHERE tenant=?) AS budget,
  (SELECT COALESCE(SUM(cost_usd), 0) FROM ledger
     WHERE workspace_key=? AND substr(day, 1, 7)=? AND {made}) AS spent,
  (SELECT COALESCE(SUM(images), 0) FROM ledger
     WHERE workspace_key=? AND user_key=? AND day=? AND {made}) AS made,
  (SELECT COALESCE(SUM(images), 0) FROM ledger WHERE user_key=? AND day=? AND {made}) AS person_used
"""


@dataclass(frozen=True)
class QuotaDefaults:
    """The operator's settings a store is made with: a user's daily images where nobody set a limit,
    a tenant's where no operator set a ceiling (None: none), the highest limit admins may set where no
    operator said otherwise (None: `limit`), and one person's daily cap in every tenant (None: none)."""

    limit: int
    ceiling: int | None = None
    admin_max: int | None = None
    person: int | None = None


async def facts(db: Queries, user_key: str, tenant: str, now: float, defaults: QuotaDefaults) -> QuotaFacts:
    """What a user's quota in a tenant is decided from, read in one round trip besides the limits."""
    day = utc_day(now)
    rows = await db.fetch(
        "SELECT tenant, scope, set_by, daily_limit FROM limits WHERE "
        "(scope='user' AND subject=? AND tenant IN (?, ?)) OR (scope IN ('members', 'ceiling', 'admin_max') AND tenant=?)",
        user_key,
        tenant,
        EVERY_TENANT,
        tenant,
    )
    counted, counted_args = db.dialect.among("state", COUNTED)
    made, made_args = db.dialect.among("state", MADE)
    row = await db.fetchrow(
        _COUNTS.format(counted=counted, made=made),
        *(tenant, user_key, day, *counted_args, tenant, user_key, day),
        *(tenant, day, *made_args, tenant, tenant, day[:7], *made_args),
        *(tenant, user_key, day, *made_args, user_key, day, *made_args),
    )
    return QuotaFacts(
        now=now,
        limits={(r[0], r[1], r[2]): int(r[3]) for r in rows},
        used=int(row[0]),
        made=int(row[5]),
        granted=int(row[1]),
        tenant_used=int(row[2]),
        budget_usd=None if row[3] is None else float(row[3]),
        month_spent_usd=float(row[4]),
        resets_at=next_reset(now),
        default_limit=defaults.limit,
        default_ceiling=defaults.ceiling,
        default_admin_max=defaults.limit if defaults.admin_max is None else defaults.admin_max,
        person_quota=defaults.person,
        person_used=int(row[6]),
    )


class Quotas:
    """The store's quota calls: the facts as the core's policy reads them, and the writes that set
    limits, grants, resets and budgets. A base of the one store (storage/store.py)."""

    if TYPE_CHECKING:  # what the store provides
        database: Database
        defaults: QuotaDefaults

        @property
        def policy(self) -> QuotaRules: ...

        def now(self) -> float: ...

        async def _lock_tenant(self, db: Queries, tenant: str) -> None: ...

        async def write(self, sql: str, *args: Any) -> int: ...

    async def quota(self, user_key: str, tenant: str) -> QuotaStatus:
        return await self._status(self.database, user_key, tenant)

    async def _status(self, db: Queries, user_key: str, tenant: str) -> QuotaStatus:
        found = await facts(db, user_key, tenant, self.now(), self.defaults)
        return self.policy.status(user_key, tenant, found)

    async def check(self, charge: Charge) -> None:
        """Raise QuotaExceeded if the charge cannot be admitted now: the cheap look before any bytes
        are fetched. `admit` checks again, atomically."""
        refused = self.policy.refusal(await self.quota(charge.user_key, charge.tenant), charge)
        if refused is None:
            refused = await self._project_refusal(
                self.database, charge.tenant, charge.project, charge.cost_usd
            )
        if refused is not None:
            raise refused

    async def _project_refusal(
        self, db: Queries, tenant: str, project: str, cost_usd: float
    ) -> Exception | None:
        """Why `cost_usd` more under `project` would pass that project's budget (None: it would not,
        or there is no project). Inside admission's transaction, under the tenant's lock."""
        if not project:
            return None
        return self.policy.project_refusal(await project_month(db, tenant, project, self.now()), cost_usd)

    async def set_project_budget(self, tenant: str, project: str, monthly_usd: float | None) -> None:
        """A project's monthly budget in one tenant, in US dollars; None clears it."""
        if monthly_usd is None:
            await self.write("DELETE FROM project_budgets WHERE tenant=? AND project=?", tenant, project)
            return
        await self.write(
            "INSERT INTO project_budgets (tenant, project, monthly_usd) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant, project) DO UPDATE SET monthly_usd=excluded.monthly_usd",
            *(tenant, project, float(monthly_usd)),
        )

    async def project_month(self, tenant: str, project: str) -> ProjectMonth:
        return await project_month(self.database, tenant, project, self.now())

    async def project_budgets(self, tenant: str) -> list[ProjectMonth]:
        """Every project of a tenant that has a budget, with this month's spend, by name."""
        rows = await self.database.fetch(
            "SELECT project FROM project_budgets WHERE tenant=? ORDER BY project", tenant
        )
        return [await self.project_month(tenant, str(r[0])) for r in rows]

    async def set_limit(self, tenant: str, scope: Scope, subject: str, limit: int | None, *, by: By) -> None:
        """A user's daily limit (`scope="user"`, `subject` the user key), the members' default
        (`"members"`) or, for operators only, the tenant's ceiling (`"ceiling"`) or the highest limit
        its admins may set (`"admin_max"`). None clears it."""
        if scope in ("ceiling", "admin_max") and by != "operator":
            raise PermissionError("only operators set a tenant's ceiling or its admins' highest limit")
        if limit is None:
            await self.write(
                "DELETE FROM limits WHERE tenant=? AND scope=? AND subject=? AND set_by=?",
                tenant,
                scope,
                subject,
                by,
            )
            return
        await self.write(
            "INSERT INTO limits (tenant, scope, subject, daily_limit, set_by) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant, scope, subject, set_by) DO UPDATE SET daily_limit=excluded.daily_limit",
            *(tenant, scope, subject, limit, by),
        )

    async def grant(self, tenant: str, user_key: str, images: int, *, by: By = "operator") -> None:
        """Extra images for today. An admin's is refused (the policy's `grant_refusal`) past what admins
        may give, checked and written under the tenant's lock."""
        now = self.now()
        async with self.database.transaction() as db:
            if by == "admin":
                await self._lock_tenant(db, tenant)
                refused = self.policy.grant_refusal(await self._status(db, user_key, tenant), images)
                if refused is not None:
                    raise refused
            await db.execute(
                "INSERT INTO grants (tenant, user_key, day, images, created_at) VALUES (?, ?, ?, ?, ?)",
                *(tenant, user_key, utc_day(now), images, float(now)),
            )

    async def reset(self, tenant: str, user_key: str) -> None:
        """Forget a user's finished usage today in one tenant (running jobs keep their reservation; the
        tenant's ceiling still counts what was made)."""
        await self.write(
            "UPDATE ledger SET state=? WHERE workspace_key=? AND user_key=? AND day=? AND state=?",
            *(LedgerState.RESET.value, tenant, user_key, utc_day(self.now()), LedgerState.COMMITTED.value),
        )

    async def set_budget(self, tenant: str, monthly_usd: float | None) -> None:
        if monthly_usd is None:
            await self.write("DELETE FROM budgets WHERE tenant=?", tenant)
            return
        await self.write(
            "INSERT INTO budgets (tenant, monthly_usd) VALUES (?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET monthly_usd=excluded.monthly_usd",
            *(tenant, float(monthly_usd)),
        )

    async def tenants_of(self, user_key: str) -> list[str]:
        """The tenants a user has made images in, the most recent first."""
        rows = await self.database.fetch(
            "SELECT workspace_key FROM ledger WHERE user_key=? GROUP BY workspace_key ORDER BY MAX(created_at) DESC",
            user_key,
        )
        return [row[0] for row in rows]

    async def limits(self, tenant: str) -> list[tuple[str, str, int, str]]:
        """Every limit set in a tenant: (scope, subject, daily limit, set by)."""
        rows = await self.database.fetch(
            "SELECT scope, subject, daily_limit, set_by FROM limits WHERE tenant=? ORDER BY scope, subject",
            tenant,
        )
        return [(r[0], r[1], int(r[2]), r[3]) for r in rows]

    async def spend(self, key: str, *, scope: Literal["user", "workspace"]) -> tuple[int, float]:
        """All-time images and dollars committed for a user (in every tenant) or a tenant."""
        column = "user_key" if scope == "user" else "workspace_key"
        spent, args = self.database.dialect.among("state", SPENT)
        row = await self.database.fetchrow(
            f"SELECT COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM ledger WHERE {column}=? AND {spent}",
            key,
            *args,
        )
        return int(row[0]), float(row[1])

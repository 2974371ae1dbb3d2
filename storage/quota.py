"""Quotas, scoped to tenants: a Discord server, a Slack workspace, or a DM / the console of one user.

Every limit, grant, reset and count belongs to one tenant. Within a tenant:
- a user's daily limit is the first of: an operator's limit for that user (in this tenant, else in
  every tenant), the tenant admins' limit for that user, an operator's members' default for the
  tenant, the tenant admins' members' default, the bot's default (HIDREAM_DAILY_IMAGE_QUOTA);
  grants for today add to it;
- the tenant's ceiling (an operator's, else HIDREAM_DAILY_WORKSPACE_QUOTA) bounds the images all its
  members make in a day. Admins' grants and resets never lift it: it counts every image reserved or
  made today, reset or not;
- the tenant's monthly budget in dollars (operators only) bounds what its jobs cost in a UTC month.
Operators act through the CLI on any tenant; admins only through their platform, in their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.model.errors import BadInput, QuotaExceeded
from bot.model.jobs import COUNTED, SPENT, LedgerState
from storage.connections import Queries

Scope = Literal["user", "members", "ceiling"]
By = Literal["operator", "admin"]
# Every tenant: an operator's limit for a user that holds in all of them.
EVERY_TENANT = "*"
# The largest number of images an admin or operator may set or grant at once.
MAX_IMAGES = 1_000_000
MAX_BUDGET_USD = 1_000_000.0
# Made or reserved today, reset or not: what a tenant's ceiling counts.
_MADE = (LedgerState.RESERVED, LedgerState.COMMITTED, LedgerState.RESET)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def next_reset(ts: float) -> datetime:
    day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def next_month(ts: float) -> datetime:
    now = datetime.fromtimestamp(ts, UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def check_images(images: int | None) -> None:
    """Refuse an amount an admin or operator typed that no sane limit needs (and SQLite cannot hold)."""
    if images is not None and not 0 <= images <= MAX_IMAGES:
        raise BadInput(f"{images} is out of range: use a whole number from 0 to {MAX_IMAGES:,}.")


@dataclass(frozen=True)
class LimitSource:
    limit: int
    source: str  # "default", "members' default (admin)", "user (operator, every tenant)", ...


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

    def text(self) -> str:
        left = max(0, int(self.resets_at.timestamp() - self.now))
        text = (
            f"You have {self.remaining} of {self.limit} images left today "
            f"(used {self.used}); the count resets at 00:00 UTC, in {left // 3600}h {left % 3600 // 60}m."
        )
        if self.ceiling is not None:
            text += f" This server or workspace has made {self.tenant_used} of its {self.ceiling} today."
        if self.show_spend and self.budget_usd is not None:
            text += f" Spend this month: ${self.month_spent_usd:.2f} of ${self.budget_usd:.2f}."
        return text


@dataclass(frozen=True)
class Charge:
    """What a job asks of its tenant: images today and dollars this month."""

    user_key: str
    tenant: str
    images: int
    cost_usd: float


_STATUS = """
SELECT
  (SELECT COALESCE(SUM(images), 0) FROM ledger
     WHERE workspace_key=? AND user_key=? AND day=? AND {counted}) AS used,
  (SELECT COALESCE(SUM(images), 0) FROM grants WHERE tenant=? AND user_key=? AND day=?) AS granted,
  (SELECT daily_limit FROM limits WHERE tenant=? AND scope='ceiling' AND set_by='operator') AS ceiling,
  (SELECT COALESCE(SUM(images), 0) FROM ledger WHERE workspace_key=? AND day=? AND {made}) AS tenant_used,
  (SELECT monthly_usd FROM budgets WHERE tenant=?) AS budget,
  (SELECT COALESCE(SUM(cost_usd), 0) FROM ledger
     WHERE workspace_key=? AND substr(day, 1, 7)=? AND {made}) AS spent
"""


async def status(
    db: Queries, user_key: str, tenant: str, now: float, *, default: int, default_ceiling: int | None
) -> QuotaStatus:
    """What a user may still make in a tenant, read in one round trip besides the limits."""
    day = utc_day(now)
    rows = await db.fetch(
        "SELECT tenant, scope, set_by, daily_limit FROM limits WHERE "
        "(scope='user' AND subject=? AND tenant IN (?, ?)) OR (scope='members' AND tenant=?)",
        user_key,
        tenant,
        EVERY_TENANT,
        tenant,
    )
    base = pick_limit({(r[0], r[1], r[2]): int(r[3]) for r in rows}, tenant, default)
    counted, counted_args = db.dialect.among("state", COUNTED)
    made, made_args = db.dialect.among("state", _MADE)
    row = await db.fetchrow(
        _STATUS.format(counted=counted, made=made),
        *(tenant, user_key, day, *counted_args, tenant, user_key, day, tenant),
        *(tenant, day, *made_args, tenant, tenant, day[:7], *made_args),
    )
    used, granted, tenant_used = int(row[0]), int(row[1]), int(row[3])
    top = int(row[2]) if row[2] is not None else default_ceiling
    money = float(row[4]) if row[4] is not None else None
    total = base.limit + granted
    remaining = max(0, total - used)
    if top is not None:
        remaining = min(remaining, max(0, top - tenant_used))
    return QuotaStatus(
        used,
        total,
        remaining,
        next_reset(now),
        now,
        base.source,
        granted,
        top,
        tenant_used,
        money,
        float(row[5]),
    )


def pick_limit(rows: dict[tuple[str, str, str], int], tenant: str, default: int) -> LimitSource:
    """The first limit that applies, from rows keyed (tenant, scope, set_by): shared by both stores."""
    order = [
        ((tenant, "user", "operator"), "your own limit, set by an operator"),
        ((EVERY_TENANT, "user", "operator"), "your own limit, set by an operator for every server"),
        ((tenant, "user", "admin"), "your own limit, set by an admin here"),
        ((tenant, "members", "operator"), "this server's or workspace's limit, set by an operator"),
        ((tenant, "members", "admin"), "this server's or workspace's limit, set by an admin"),
    ]
    for key, source in order:
        if key in rows:
            return LimitSource(rows[key], source)
    return LimitSource(default, "the bot's default")


def refusal(status: QuotaStatus, charge: Charge) -> QuotaExceeded | None:
    """Why this charge cannot be admitted, or None when it can."""
    when = _when(status.resets_at, status.now)
    if status.budget_usd is not None and status.month_spent_usd + charge.cost_usd > status.budget_usd + 1e-9:
        month = _when(next_month(status.now), status.now, fmt="%Y-%m-%d 00:00 UTC")
        return QuotaExceeded(
            f"This server or workspace has used ${status.month_spent_usd:.2f} of its ${status.budget_usd:.2f} "
            f"monthly budget, and this request would cost ${charge.cost_usd:.2f}. The budget resets on {month}.",
            limit="budget",
        )
    if status.ceiling is not None and status.tenant_used + charge.images > status.ceiling:
        return QuotaExceeded(
            f"This server or workspace has made {status.tenant_used} of the {status.ceiling} images it may make "
            f"today. The limit resets at {when}.",
            limit="tenant",
        )
    if status.limit - status.used >= charge.images:
        return None
    if status.limit - status.used <= 0:
        return QuotaExceeded(
            f"You have used all {status.limit} of your images for today. The limit resets at {when}."
        )
    return QuotaExceeded(
        f"That asks for {charge.images} images but you have {status.limit - status.used} of {status.limit} left "
        f"today. Ask for fewer with `--n`, or wait until the limit resets at {when}."
    )


def _when(at: datetime, now: float, fmt: str = "00:00 UTC") -> str:
    left = max(0, int(at.timestamp() - now))
    label = at.strftime(fmt)
    if left >= 86400:
        return f"{label} (in {left // 86400}d {left % 86400 // 3600}h)"
    return f"{label} (in {left // 3600}h {left % 3600 // 60}m)"


async def set_limit(db: Queries, tenant: str, scope: Scope, subject: str, limit: int | None, by: By) -> None:
    check_images(limit)
    if limit is None:
        await db.execute(
            "DELETE FROM limits WHERE tenant=? AND scope=? AND subject=? AND set_by=?",
            tenant,
            scope,
            subject,
            by,
        )
        return
    await db.execute(
        "INSERT INTO limits (tenant, scope, subject, daily_limit, set_by) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (tenant, scope, subject, set_by) DO UPDATE SET daily_limit=excluded.daily_limit",
        *(tenant, scope, subject, limit, by),
    )


async def grant(db: Queries, tenant: str, user_key: str, images: int, now: float) -> None:
    check_images(images)
    await db.execute(
        "INSERT INTO grants (tenant, user_key, day, images, created_at) VALUES (?, ?, ?, ?, ?)",
        *(tenant, user_key, utc_day(now), images, float(now)),
    )


async def reset(db: Queries, tenant: str, user_key: str, now: float) -> None:
    """Forget a user's finished usage today in one tenant (running jobs keep their reservation; the
    tenant's ceiling still counts what was made)."""
    await db.execute(
        "UPDATE ledger SET state=? WHERE workspace_key=? AND user_key=? AND day=? AND state=?",
        *(LedgerState.RESET.value, tenant, user_key, utc_day(now), LedgerState.COMMITTED.value),
    )


async def set_budget(db: Queries, tenant: str, monthly_usd: float | None) -> None:
    if monthly_usd is None:
        await db.execute("DELETE FROM budgets WHERE tenant=?", tenant)
        return
    if not 0 <= monthly_usd <= MAX_BUDGET_USD:
        raise BadInput(f"${monthly_usd} is out of range: use 0 to {MAX_BUDGET_USD:,.0f} dollars.")
    await db.execute(
        "INSERT INTO budgets (tenant, monthly_usd) VALUES (?, ?) "
        "ON CONFLICT (tenant) DO UPDATE SET monthly_usd=excluded.monthly_usd",
        *(tenant, float(monthly_usd)),
    )


async def spend(db: Queries, key: str, column: str) -> tuple[int, float]:
    spent, args = db.dialect.among("state", SPENT)
    row = await db.fetchrow(
        f"SELECT COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM ledger WHERE {column}=? AND {spent}",
        key,
        *args,
    )
    return int(row[0]), float(row[1])


async def limits_of(db: Queries, tenant: str) -> list[tuple[str, str, int, str]]:
    """Every limit set in a tenant: (scope, subject, daily limit, set by)."""
    rows = await db.fetch(
        "SELECT scope, subject, daily_limit, set_by FROM limits WHERE tenant=? ORDER BY scope, subject",
        tenant,
    )
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]

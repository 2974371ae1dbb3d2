"""The quota policy, over the facts the store keeps (storage/quota.py): which limit applies to a user
in a tenant, whether a charge is admitted, which amounts may be set, and which refusal to give. The store applies it inside the transaction that
charges, under the tenant's lock (it is given this policy when it is made). Its sentences are
bot/words.py's, like every other.

Every limit, grant, reset and count belongs to one tenant (a server, a workspace, or a DM / the
console of one user). Within a tenant:
- a user's daily limit is the first of: an operator's limit for that user (in this tenant, else in
  every tenant), the tenant admins' limit for that user, an operator's members' default for the
  tenant, the tenant admins' members' default, the bot's default (HIDREAM_DAILY_IMAGE_QUOTA);
  grants for today add to it;
- the tenant's ceiling (an operator's, else HIDREAM_DAILY_WORKSPACE_QUOTA) bounds the images all its
  members make in a day. Admins' grants and resets never lift it: it counts every image reserved or
  made today, reset or not;
- the tenant's monthly budget in dollars (operators only) bounds what its jobs cost in a UTC month;
  a project's (operators only, per tenant) bounds what the jobs counted under it cost there;
- its admins may give a member at most the admin maximum a day (an operator's for the tenant, else
  HIDREAM_ADMIN_MAX_LIMIT, else HIDREAM_DAILY_IMAGE_QUOTA): a higher limit of theirs counts as the
  maximum, they may not grant past it, and their resets do not lift a member's images of the day
  (resets included) past it, unless an operator's limit or grant for the member is higher.
Across tenants, HIDREAM_DAILY_PERSON_QUOTA (when set) bounds one person's images a day in all of
them together, resets included; the store takes a lock on the person to check it.
Operators act through the CLI on any tenant; admins only through their platform, in their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import words
from bot.model.errors import BadInput, QuotaExceeded
from storage.quota import EVERY_TENANT, Charge, ProjectMonth, QuotaFacts, QuotaStatus

# A budget is passed by more than rounding.
_CENT_FRACTION = 1e-9
# The largest number of images an admin or operator may set or grant at once (and SQLite can hold).
MAX_IMAGES = 1_000_000
MAX_BUDGET_USD = 1_000_000.0


def check_images(images: int | None) -> None:
    """Refuse an amount an admin or operator typed that no sane limit needs."""
    if images is not None and not 0 <= images <= MAX_IMAGES:
        raise BadInput(words.images_out_of_range(images, MAX_IMAGES))


def check_budget(monthly_usd: float | None) -> None:
    if monthly_usd is not None and not 0 <= monthly_usd <= MAX_BUDGET_USD:  # (NaN is neither)
        raise BadInput(words.budget_out_of_range(monthly_usd, MAX_BUDGET_USD))


@dataclass(frozen=True)
class LimitSource:
    limit: int
    source: str  # words.LIMIT_DEFAULT, words.LIMIT_OPERATOR_USER, ...
    by_admin: bool = False
    # An operator's limit for this person (here, or in every tenant): 0 is how an operator blocks one.
    by_operator_for_user: bool = False


def pick_limit(rows: dict[tuple[str, str, str], int], tenant: str, default: int) -> LimitSource:
    """The first limit that applies, from rows keyed (tenant, scope, set_by)."""
    order = [
        ((tenant, "user", "operator"), words.LIMIT_OPERATOR_USER),
        ((EVERY_TENANT, "user", "operator"), words.LIMIT_OPERATOR_USER_EVERYWHERE),
        ((tenant, "user", "admin"), words.LIMIT_ADMIN_USER),
        ((tenant, "members", "operator"), words.LIMIT_OPERATOR_MEMBERS),
        ((tenant, "members", "admin"), words.LIMIT_ADMIN_MEMBERS),
    ]
    for key, source in order:
        if key in rows:
            _, scope, by = key
            return LimitSource(
                rows[key],
                source,
                by_admin=by == "admin",
                by_operator_for_user=scope == "user" and by == "operator",
            )
    return LimitSource(default, words.LIMIT_DEFAULT)


def admin_max(facts: QuotaFacts, tenant: str) -> int:
    """The highest daily limit the tenant's admins may give a member."""
    return facts.limits.get((tenant, "admin_max", "operator"), facts.default_admin_max)


def next_month(ts: float) -> datetime:
    now = datetime.fromtimestamp(ts, UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


class QuotaPolicy:
    def status(self, user_key: str, tenant: str, facts: QuotaFacts) -> QuotaStatus:
        base = pick_limit(facts.limits, tenant, facts.default_limit)
        most = admin_max(facts, tenant)
        if base.by_admin and base.limit > most:  # set before the maximum was, or above a lowered one
            base = LimitSource(most, words.limit_capped(base.source, most), True)
        top = facts.limits.get((tenant, "ceiling", "operator"), facts.default_ceiling)
        total = base.limit + facts.granted
        remaining = max(0, total - facts.used)
        # Resets lift a member's day only as far as an admin may, unless an operator allowed more.
        remaining = min(remaining, max(0, max(most, total) - facts.made))
        if top is not None:
            remaining = min(remaining, max(0, top - facts.tenant_used))
        if facts.person_quota is not None:
            remaining = min(remaining, max(0, facts.person_quota - facts.person_used))
        return QuotaStatus(
            facts.used,
            total,
            remaining,
            facts.resets_at,
            facts.now,
            base.source,
            facts.granted,
            top,
            facts.tenant_used,
            facts.budget_usd,
            facts.month_spent_usd,
            made=facts.made,
            admin_max=most,
            person_quota=facts.person_quota,
            person_used=facts.person_used,
            blocked=base.by_operator_for_user and base.limit == 0 and facts.granted == 0,
        )

    def over_budget(self, status: QuotaStatus, more_usd: float) -> bool:
        budget = status.budget_usd
        return budget is not None and status.month_spent_usd + more_usd > budget + _CENT_FRACTION

    def refusal(self, status: QuotaStatus, charge: Charge) -> QuotaExceeded | None:
        """Why this charge cannot be admitted, or None when it can."""
        when = _when(status.resets_at, status.now)
        if self.over_budget(status, charge.cost_usd):
            month = _when(next_month(status.now), status.now, fmt="%Y-%m-%d 00:00 UTC")
            spent, budget = status.month_spent_usd, status.budget_usd or 0.0
            return QuotaExceeded(words.budget_spent(spent, budget, charge.cost_usd, month), limit="budget")
        if status.ceiling is not None and status.tenant_used + charge.images > status.ceiling:
            return QuotaExceeded(
                words.ceiling_reached(status.tenant_used, status.ceiling, when), limit="tenant"
            )
        if status.person_quota is not None and status.person_used + charge.images > status.person_quota:
            used, most = status.person_used, status.person_quota
            return QuotaExceeded(words.person_quota_reached(used, most, when), limit="person")
        if status.limit - status.used >= charge.images:
            return self._past_admin_max(status, charge, when)
        if status.blocked:
            # An operator's limit of 0 for this person: no count to wait for, so none is named.
            return QuotaExceeded(words.BLOCKED_BY_OPERATOR, limit="blocked")
        if status.limit - status.used <= 0:
            return QuotaExceeded(words.all_used(status.limit, when))
        left = status.limit - status.used
        return QuotaExceeded(words.too_few_left(charge.images, left, status.limit, when, jobs=charge.jobs))

    def project_refusal(self, month: ProjectMonth, cost_usd: float) -> QuotaExceeded | None:
        """A project's budget bounds what its jobs cost in a UTC month in its tenant, within the
        tenant's own budget: reserved at admission, given back when a job fails."""
        budget = month.budget_usd
        if budget is None or month.spent_usd + cost_usd <= budget + _CENT_FRACTION:
            return None
        resets = _when(next_month(month.now), month.now, fmt="%Y-%m-%d 00:00 UTC")
        return QuotaExceeded(
            words.project_budget_spent(month.project, month.spent_usd, budget, cost_usd, resets),
            limit="project",
        )

    def grant_refusal(self, status: QuotaStatus, images: int) -> BadInput | None:
        """Why an admin may not grant `images` more today (the store asks under the tenant's lock, so
        grants at once cannot pass the maximum together), or None when they may."""
        most = status.admin_max
        if most is None or status.limit + images <= max(most, status.limit):
            return None
        return BadInput(words.grant_past_admin_max(status.limit + images, most))

    def _past_admin_max(self, status: QuotaStatus, charge: Charge, when: str) -> QuotaExceeded | None:
        """Admins' resets give a member back their day's images only up to what an admin may allow."""
        lifted_to = max(status.admin_max or 0, status.limit)
        if status.admin_max is None or status.made + charge.images <= lifted_to:
            return None
        return QuotaExceeded(words.past_admin_max(status.made, lifted_to, when), limit="admin_max")


def _when(at: datetime, now: float, fmt: str = "00:00 UTC") -> str:
    left = max(0, int(at.timestamp() - now))
    label = at.strftime(fmt)
    if left >= 86400:
        return f"{label} (in {left // 86400}d {left % 86400 // 3600}h)"
    return f"{label} (in {left // 3600}h {left % 3600 // 60}m)"


def admin_may_set(status: QuotaStatus, images: int) -> None:
    """Refuse an admin's limit above the maximum an admin may give a member in this tenant."""
    most = status.admin_max
    if most is not None and images > most:
        raise BadInput(
            f"{images} is more than admins here may set: at most {most} images a day. "
            "An operator of the bot may allow more."
        )


# The policy is stateless: one serves every store.
POLICY = QuotaPolicy()

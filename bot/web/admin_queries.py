"""What the operators' page is asked for in its query strings: a date range and a grouping for costs
(`/admin?since=...&until=...&by=...&tenant=...`, `/admin/api/costs?...`) and an audit export's range,
tenant and format (`/admin/export?...`). Each is read into a value or, when wrong, a sentence that
says why (answered with 400, or shown on the page)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from storage.audit import FORMATS, Format
from storage.costs import BY, By

TENANT_RE = re.compile(r"[a-z][a-z0-9_-]*:\S{1,200}")
EXPORT_TYPES: dict[Format, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@dataclass(frozen=True)
class CostQuery:
    since: str
    until: str
    by: By
    tenant: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "by": self.by, "tenant": self.tenant}


@dataclass(frozen=True)
class ExportQuery:
    since: date
    until: date | None
    format: Format
    tenant: str | None = None

    def filename(self) -> str:
        end = self.until.isoformat() if self.until else "now"
        return f"hidream-audit-{self.since.isoformat()}-to-{end}.{self.format}"


def _day(query: Mapping[str, str], name: str) -> date | str | None:
    text = query.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return f"{name} {text[:20]!r} is not a date: write it as YYYY-MM-DD"


def _tenant(query: Mapping[str, str]) -> str | Exception | None:
    text = query.get("tenant", "").strip()
    if not text:
        return None
    if not TENANT_RE.fullmatch(text):
        return ValueError(f"tenant {text[:40]!r} is not SURFACE:ID (e.g. console:local)")
    return text


def read_cost_query(query: Mapping[str, str], now: float) -> CostQuery | str:
    """The costs asked for; by default this UTC month so far, by tenant."""
    today = datetime.fromtimestamp(now, UTC).date()
    since, until = _day(query, "since"), _day(query, "until")
    for value in (since, until):
        if isinstance(value, str):
            return value
    first = since if isinstance(since, date) else today.replace(day=1)
    last = until if isinstance(until, date) else max(today, first)
    if last < first:
        return f"until {last} is before since {first}"
    by = query.get("by", "tenant") or "tenant"
    if by not in BY:
        return f"by {by[:20]!r} is not one of {', '.join(BY)}"
    tenant = _tenant(query)
    if isinstance(tenant, Exception):
        return str(tenant)
    return CostQuery(first.isoformat(), last.isoformat(), by, tenant)


def read_export_query(query: Mapping[str, str]) -> ExportQuery | str:
    since, until = _day(query, "since"), _day(query, "until")
    for value in (since, until):
        if isinstance(value, str):
            return value
    if not isinstance(since, date):
        return "since is needed: the first UTC day to export, as YYYY-MM-DD"
    if isinstance(until, date) and until < since:
        return f"until {until} is before since {since}"
    fmt = query.get("format", "csv")
    if fmt not in FORMATS:
        return f"format {fmt[:20]!r} is not one of {', '.join(FORMATS)}"
    tenant = _tenant(query)
    if isinstance(tenant, Exception):
        return str(tenant)
    return ExportQuery(since, until if isinstance(until, date) else None, fmt, tenant)


def export_defaults(now: float) -> dict[str, str]:
    """What the page's export form starts with: this UTC month so far."""
    today = datetime.fromtimestamp(now, UTC).date()
    return {"since": today.replace(day=1).isoformat(), "until": today.isoformat()}

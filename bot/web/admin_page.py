"""The operators' page as HTML: the figures of storage/reports.py, with the charts drawn as SVG.

The markup is in templates/ (Jinja2, every value autoescaped); this module only works out what they
show: the charts' geometry, the tables' rows, the money and times as text. The server draws the
charts, so the page carries no script at all: nothing to fetch from a CDN, nothing to ship and keep up
to date, and its Content-Security-Policy can forbid every script, which makes any markup that slipped
into a prompt or an error inert twice over (it is also escaped by the templates). SVG scales with its
viewBox, so the charts fit a phone; their labels are drawn larger in the viewBox's units on narrow
windows (the stylesheet in base.html), so none is smaller than 10 pixels at any width from 400 up.

The page reloads itself every REFRESH_SECONDS with a `<meta http-equiv="refresh">` naming no other
address: browsers treat that as a reload of the same document, which keeps the reader's scroll position
(checked in Chromium by tests/test_admin_browser.py), and it needs no script.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import jinja2

# One colour per provider, in the order of their names (enough for every provider the bot knows).
PALETTE = ("#2f6fde", "#e0803a", "#3aa37a", "#b04fc2", "#c9a227", "#d0455a", "#4fb3c2", "#7a7a7a")
CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 240, 64, 30, 24
# How often the page reloads itself (a meta refresh: no script).
REFRESH_SECONDS = 30

Row = list[tuple[str, object]]

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.web", "templates"),
    autoescape=True,  # every template here is HTML: nothing from the store is ever markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def usd(value: float) -> str:
    return f"${value:,.2f}"


def axis_usd(value: float) -> str:
    """A scale's dollars, short enough for the chart's left margin: no cents on whole dollars."""
    return f"${value:,.0f}" if value == round(value) else usd(value)


def colours(providers: list[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(providers)}


def chart(daily: dict[str, Any], measure: str, chart_id: str, label: str) -> dict[str, Any]:
    """A stacked bar chart of `measure` ("images" or "usd") per day and provider, for macros.chart."""
    days, colour = daily["days"], colours(daily["providers"])
    totals = [sum(p[measure] for p in d["providers"].values()) for d in days]
    top = nice_top(max(totals), whole=measure == "images")
    plot_w, plot_h = CHART_W - PAD_L - 6, CHART_H - PAD_B - PAD_T
    step = plot_w / len(days)
    grid = []
    for i in range(5):  # the grid and its scale
        y = PAD_T + plot_h * (1 - i / 4)
        value = top * i / 4
        grid.append(
            {
                "x1": PAD_L,
                "x2": CHART_W - 6,
                "y": f"{y:.1f}",
                "text_x": PAD_L - 4,
                "text_y": f"{y + 4:.1f}",
                "text": axis_usd(value) if measure == "usd" else f"{value:g}",
            }
        )
    columns = []
    for i, (day, total) in enumerate(zip(days, totals, strict=True)):
        column = _bar(day, total, measure, colour, PAD_L + i * step, step, plot_h / top)
        if i % 5 == 0 or i == len(days) - 1:
            # The last day's label ends at the chart's right edge, where a centred one would be cut.
            last = i == len(days) - 1
            column["tick"] = {
                "x": f"{PAD_L + (i + 1 if last else i + 0.5) * step:.1f}",
                "y": CHART_H - 8,
                "text": day["day"][5:],
                "anchor": "end" if last else "middle",
            }
        columns.append(column)
    empty = None
    if not any(totals):
        empty = {"x": f"{PAD_L + plot_w / 2:.1f}", "y": f"{PAD_T + plot_h / 2:.1f}"}
    return {
        "id": chart_id,
        "measure": measure,
        "label": label,
        "width": CHART_W,
        "height": CHART_H,
        "grid": grid,
        "days": columns,
        "empty": empty,
    }


def nice_top(largest: float, *, whole: bool) -> float:
    """The top of the scale: at least `largest`, so that its four steps are round (whole numbers of
    images; multiples of a cent or more for dollars)."""
    if largest <= 0:
        return 4.0 if whole else 1.0
    step = largest / 4
    if whole:
        return float(math.ceil(step) * 4)
    magnitude = 10.0 ** math.floor(math.log10(step))
    for factor in (1, 2, 2.5, 5, 10):
        if step <= factor * magnitude:
            return factor * magnitude * 4
    return largest


def _bar(
    day: dict[str, Any],
    total: float,
    measure: str,
    colour: dict[str, str],
    x: float,
    step: float,
    scale: float,
) -> dict[str, Any]:
    """One day's column: a segment per provider, bottom up, and the day's total above it."""
    segments, base = [], PAD_T + (CHART_H - PAD_B - PAD_T)
    for provider in sorted(day["providers"]):
        value = day["providers"][provider][measure]
        if value <= 0:
            continue
        height = value * scale
        base -= height
        segments.append(
            {
                "x": f"{x + step * 0.15:.1f}",
                "y": f"{base:.1f}",
                "width": f"{step * 0.7:.1f}",
                "height": f"{height:.1f}",
                "fill": colour[provider],
                "provider": provider,
                "value": value,
                "shown": usd(value) if measure == "usd" else f"{value} images",
            }
        )
    shown_total = None
    if total > 0:
        text = usd(total) if measure == "usd" else f"{total:g}"
        shown_total = {"x": f"{x + step / 2:.1f}", "y": f"{base - 3:.1f}", "text": text}
    return {"day": day["day"], "segments": segments, "total": shown_total, "tick": None}


def legend(daily: dict[str, Any]) -> list[dict[str, Any]]:
    colour = colours(daily["providers"])
    return [
        {"provider": p, "colour": colour[p], "images": t["images"], "usd": usd(t["usd"])}
        for p, t in daily["totals"].items()
    ]


def page(report: dict[str, Any]) -> str:
    """The whole page from the figures the API serves (`bot.web.admin.overview`)."""
    daily, queue, top, tenants = report["daily"], report["queue"], report["top"], report["tenants"]
    month_images = sum(t["images"] for t in daily["totals"].values())
    month_usd = sum(t["usd"] for t in daily["totals"].values())
    return _templates.get_template("admin.html").render(
        refresh_seconds=REFRESH_SECONDS,
        now=when(report["now"]),
        cards=[
            ("cards-images", "images, 30 days", f"{month_images}"),
            ("cards-usd", "spend, 30 days", usd(month_usd)),
            ("cards-queued", "queued", f"{queue['queued']}"),
            ("cards-active", "active", f"{queue['active']}"),
        ],
        legend_items=legend(daily),
        images_chart=chart(daily, "images", "images-chart", "Images delivered per day, stacked by provider"),
        spend_chart=chart(daily, "usd", "spend-chart", "Dollars spent per day, stacked by provider"),
        top_tenants=[
            [("text", t["tenant"]), ("num", t["images"]), ("num", usd(t["usd"]))] for t in top["tenants"]
        ],
        top_users=[
            [("text", u["user"]), ("text", u["tenant"]), ("num", u["images"]), ("num", usd(u["usd"]))]
            for u in top["users"]
        ],
        failures=[
            [("text", f["cause"]), ("num", f["jobs"]), ("when", when(f["last_at"]))]
            for f in report["failures"]
        ],
        providers=_providers(report.get("providers", [])),
        jobs=_jobs(report),
        default_limit=tenants["default_user_limit"],
        default_ceiling=tenants["default_ceiling"] if tenants["default_ceiling"] is not None else "none",
        tenants=_tenants(tenants),
        max_subjects=tenants.get("max_subjects"),
        subject_storage_mb=tenants.get("subject_storage_mb"),
        costs=_costs(report.get("costs")),
        groupings=GROUPINGS,
        export=report.get("export") or {"since": "", "until": ""},
        approvals=_approvals(report),
        kits=_kits(report),
    )


# The groupings the costs form offers, and the heading of each one's key column.
GROUPINGS = ("tenant", "channel", "project", "person", "provider")


def _costs(costs: dict[str, Any] | None) -> dict[str, Any]:
    """The costs section: the form's values, the table's head and rows, or why the query was wrong."""
    if costs is None or "error" in costs:
        return {
            "error": None if costs is None else costs["error"],
            **{"since": "", "until": "", "by": "tenant", "tenant": "", "head": [], "rows": []},
            "total": (0, usd(0.0)),
        }
    by = costs["by"]
    within = by not in ("tenant", "provider")
    head = (["tenant", by] if within else [by]) + ["#images", "#dollars", "#jobs"]
    rows: list[Row] = []
    for r in costs["rows"]:
        named: Row = (
            [("text", r["tenant"]), ("text", r["key"] or "(none)")] if within else [("text", r["key"])]
        )
        rows.append([*named, ("num", r["images"]), ("num", usd(r["usd"])), ("num", r["jobs"])])
    total = (sum(r["images"] for r in costs["rows"]), usd(sum(r["usd"] for r in costs["rows"])))
    return {
        "error": None,
        "since": costs["since"],
        "until": costs["until"],
        "by": by,
        "tenant": costs.get("tenant") or "",
        "head": head,
        "rows": rows,
        "total": total,
    }


def _providers(providers: list[dict[str, Any]]) -> list[Row]:
    return [
        [
            ("text", p["provider"]),
            ("text", p["state"]),
            ("num", p["failures"]),
            ("when", when(p["retry_at"]) if p["retry_at"] is not None else ""),
        ]
        for p in providers
    ]


def _jobs(report: dict[str, Any]) -> list[Row]:
    return [
        [
            ("id", j["id"]),
            ("when", when(j["created_at"])),
            (f"state-{j['state']}", j["state"]),
            ("", j["provider"]),
            ("num", f"{j['seconds']:.1f}"),
            ("text", f"{j['surface']}:{j['user']}"),
            ("text", j["prompt"]),
            ("text", j["error"] or ""),
        ]
        for j in report["jobs"]
    ]


def _approvals(report: dict[str, Any]) -> list[Row]:
    """Results waiting for a reviewer (bot/usecases/approvals.py), oldest first, with their age."""
    return [
        [
            ("text", a["tenant"]),
            ("text", a["channel"]),
            ("text", a["requester"]),
            ("text", a["prompt"]),
            ("num", age(report["now"] - a["created_at"])),
            ("id", a["job"]),
        ]
        for a in report.get("approvals", [])
    ]


def _kits(report: dict[str, Any]) -> list[Row]:
    """Every tenant's style kits (storage/kits.py), at their newest version."""
    return [
        [
            ("text", k["tenant"]),
            ("text", k["kit"]),
            ("num", f"v{k['version']}"),
            ("text", k["saved_by"]),
            ("when", when(k["saved_at"])),
            ("num", k["bound_channels"]),
        ]
        for k in report.get("kits", [])
    ]


def age(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // (24 * 60)} days"


def _tenants(tenants: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for t in tenants["tenants"]:
        limits = "; ".join(
            f"{x['scope']}{' ' + x['subject'] if x['subject'] else ''}: {x['daily_limit']} ({x['set_by']})"
            for x in t["limits"]
        )
        budget = "none" if t["budget_usd"] is None else usd(t["budget_usd"])
        rows.append(
            [
                ("text", t["tenant"]),
                ("text", limits or "defaults"),
                ("num", budget),
                ("num", usd(t["month_usd"])),
                ("num", t["today_images"]),
                ("num", t.get("subjects", 0)),
                ("num", f"{t.get('subject_mb', 0.0):.1f}"),
            ]
        )
    return rows


# What the moderation view says after an action (the redirect names one of these, never free text).
NOTICES = {
    "deleted": "The image was deleted: its posts in the chat and its stored bytes.",
    "deleted-here": "The image's stored bytes were deleted, but its posts could not be taken down from here "
    "(its surface does not run on this replica, or the platform refused): remove them in the chat.",
    "blocked": "The person is blocked in that tenant (a daily limit of 0, set by an operator).",
    "blocked-everywhere": "The person is blocked in every tenant (a daily limit of 0, set by an operator).",
    "not-found": "No such job.",
}


def moderation_page(
    items: list[dict[str, Any]],
    *,
    filters: dict[str, str],
    states: list[str],
    actions: list[dict[str, Any]],
    notice: str,
    csrf: str,
) -> str:
    """The moderation view: each job's thumbnails (`thumbs`: signed links), who asked and the prompt,
    with forms to delete it or block its requester; the filters as a GET form; the latest actions."""
    return _templates.get_template("moderation.html").render(
        items=[{**i, "when": when(i["created_at"])} for i in items],
        filters=filters,
        states=states,
        actions=[
            [
                ("when", when(a["at"])),
                ("text", a["action"]),
                ("id", a["job_id"] or ""),
                ("text", a["tenant"]),
                ("text", a["user_key"]),
                ("text", a["detail"]),
            ]
            for a in actions
        ],
        notice=NOTICES.get(notice, ""),
        csrf=csrf,
    )


def login_page(message: str = "") -> str:
    return _templates.get_template("login.html").render(message=message)

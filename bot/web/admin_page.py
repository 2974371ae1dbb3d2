"""The operators' page as HTML: the figures of storage/reports.py, with the charts drawn here as SVG.

The server draws the charts, so the page carries no script at all: nothing to fetch from a CDN,
nothing to ship and keep up to date, and its Content-Security-Policy can forbid every script, which
makes any markup that slipped into a prompt or an error inert twice over (it is also escaped: every
value from the store passes through `esc`). SVG scales with its viewBox, so the charts fit a phone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any

# One colour per provider, in the order of their names (enough for every provider the bot knows).
PALETTE = ("#2f6fde", "#e0803a", "#3aa37a", "#b04fc2", "#c9a227", "#d0455a", "#4fb3c2", "#7a7a7a")
CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 240, 44, 26, 18

STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0 auto; padding: 12px; max-width: 1100px; }
header { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; justify-content: space-between; }
h1 { font-size: 1.3rem; margin: 0; } h2 { font-size: 1.05rem; margin: 18px 0 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 8px; }
.card { border: 1px solid #8884; border-radius: 6px; padding: 8px; }
.card b { display: block; font-size: 1.4rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #8883; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { min-width: 8em; max-width: 320px; overflow-wrap: anywhere; }
td.when { white-space: nowrap; }
svg { width: 100%; height: auto; max-height: 320px; }
svg text { font-size: 11px; fill: currentColor; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.85rem; margin: 4px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.state-failed { color: #d0455a; } .state-delivered { color: #3aa37a; }
form.inline { display: inline; }
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def usd(value: float) -> str:
    return f"${value:,.2f}"


def colours(providers: list[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(providers)}


def chart(daily: dict[str, Any], measure: str, chart_id: str, label: str) -> str:
    """A stacked bar chart of `measure` ("images" or "usd") per day and provider, as inline SVG."""
    days, colour = daily["days"], colours(daily["providers"])
    totals = [sum(p[measure] for p in d["providers"].values()) for d in days]
    top = nice_top(max(totals), whole=measure == "images")
    plot_w, plot_h = CHART_W - PAD_L - 6, CHART_H - PAD_B - PAD_T
    step = plot_w / len(days)
    parts = [
        f'<svg id="{chart_id}" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{esc(label)}">',
        f"<title>{esc(label)}</title>",
    ]
    for i in range(5):  # the grid and its scale
        y = PAD_T + plot_h * (1 - i / 4)
        value = top * i / 4
        text = usd(value) if measure == "usd" else f"{value:g}"
        parts.append(
            f'<line x1="{PAD_L}" x2="{CHART_W - 6}" y1="{y:.1f}" y2="{y:.1f}" stroke="#8884"/>'
            f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(text)}</text>'
        )
    for i, (day, total) in enumerate(zip(days, totals, strict=True)):
        parts.extend(_bar(day, total, measure, colour, PAD_L + i * step, step, plot_h / top))
        if i % 5 == 0 or i == len(days) - 1:
            x = PAD_L + (i + 0.5) * step
            parts.append(
                f'<text x="{x:.1f}" y="{CHART_H - 8}" text-anchor="middle">{esc(day["day"][5:])}</text>'
            )
    if not any(totals):
        parts.append(
            f'<text x="{PAD_L + plot_w / 2:.1f}" y="{PAD_T + plot_h / 2:.1f}" text-anchor="middle" '
            'class="empty">nothing in these days</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


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
) -> list[str]:
    """One day's column: a segment per provider, bottom up, and the day's total above it."""
    parts, base = [], PAD_T + (CHART_H - PAD_B - PAD_T)
    for provider in sorted(day["providers"]):
        value = day["providers"][provider][measure]
        if value <= 0:
            continue
        height = value * scale
        base -= height
        shown = usd(value) if measure == "usd" else f"{value} images"
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{base:.1f}" width="{step * 0.7:.1f}" height="{height:.1f}" '
            f'fill="{colour[provider]}" data-day="{esc(day["day"])}" data-provider="{esc(provider)}" '
            f'data-value="{value}"><title>{esc(day["day"])} {esc(provider)}: {esc(shown)}</title></rect>'
        )
    if total > 0:
        text = usd(total) if measure == "usd" else f"{total:g}"
        parts.append(
            f'<text class="total" x="{x + step / 2:.1f}" y="{base - 3:.1f}" text-anchor="middle" '
            f'data-day="{esc(day["day"])}">{esc(text)}</text>'
        )
    return parts


def legend(daily: dict[str, Any], legend_id: str) -> str:
    colour = colours(daily["providers"])
    items = [
        f'<span data-provider="{esc(p)}"><span class="swatch" style="background:{colour[p]}"></span>'
        f"{esc(p)}: {t['images']} images, {esc(usd(t['usd']))}</span>"
        for p, t in daily["totals"].items()
    ]
    return f'<div class="legend" id="{legend_id}">{"".join(items) or "no images in these days"}</div>'


def table(table_id: str, head: list[str], rows: list[list[tuple[str, object]]], empty: str) -> str:
    """A table; each cell is (its class, its value), the value escaped here."""
    th = "".join(f'<th class="{"num" if h.startswith("#") else ""}">{esc(h.lstrip("#"))}</th>' for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{esc(value)}</td>' for cls, value in row) + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(head)}">{esc(empty)}</td></tr>'
    return f'<div class="scroll"><table id="{table_id}"><tr>{th}</tr>{body}</table></div>'


def page(report: dict[str, Any]) -> str:
    """The whole page from the figures the API serves (`bot.web.admin.overview`)."""
    daily, queue = report["daily"], report["queue"]
    month_images = sum(t["images"] for t in daily["totals"].values())
    month_usd = sum(t["usd"] for t in daily["totals"].values())
    cards = [
        ("cards-images", "images, 30 days", f"{month_images}"),
        ("cards-usd", "spend, 30 days", usd(month_usd)),
        ("cards-queued", "queued", f"{queue['queued']}"),
        ("cards-active", "active", f"{queue['active']}"),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>hidream-bot · operators</title><style>{STYLE}</style></head><body>"
        "<header><h1>hidream-bot · operators</h1><span>as of "
        f'{esc(when(report["now"]))} · <form class="inline" method="post" action="/admin/logout">'
        '<button type="submit">Sign out</button></form></span></header>'
        '<div class="cards">'
        + "".join(f'<div class="card" id="{i}"><b>{esc(v)}</b>{esc(k)}</div>' for i, k, v in cards)
        + "</div><h2>Images per day, by provider (last 30 days, UTC)</h2>"
        + legend(daily, "legend")
        + chart(daily, "images", "images-chart", "Images delivered per day, stacked by provider")
        + "<h2>Spend per day, by provider</h2>"
        + chart(daily, "usd", "spend-chart", "Dollars spent per day, stacked by provider")
        + _sections(report)
        + "</body></html>"
    )


def _sections(report: dict[str, Any]) -> str:
    top, tenants = report["top"], report["tenants"]
    return (
        '<div class="grid"><div><h2>Top tenants by spend</h2>'
        + table(
            "top-tenants",
            ["tenant", "#images", "#spend"],
            [[("text", t["tenant"]), ("num", t["images"]), ("num", usd(t["usd"]))] for t in top["tenants"]],
            "no spend yet",
        )
        + "</div><div><h2>Top users by spend</h2>"
        + table(
            "top-users",
            ["user", "tenant", "#images", "#spend"],
            [
                [("text", u["user"]), ("text", u["tenant"]), ("num", u["images"]), ("num", usd(u["usd"]))]
                for u in top["users"]
            ],
            "no spend yet",
        )
        + "</div></div><h2>Failures by cause (last 30 days)</h2>"
        + table(
            "failures",
            ["cause", "#jobs", "last"],
            [
                [("text", f["cause"]), ("num", f["jobs"]), ("when", when(f["last_at"]))]
                for f in report["failures"]
            ],
            "no failures",
        )
        + "<h2>Providers (this replica's circuit breakers)</h2>"
        + table(
            "providers",
            ["provider", "state", "#failures in a row", "next try"],
            [
                [
                    ("text", p["provider"]),
                    ("text", p["state"]),
                    ("num", p["failures"]),
                    ("when", when(p["retry_at"]) if p["retry_at"] is not None else ""),
                ]
                for p in report.get("providers", [])
            ],
            "no provider",
        )
        + "<h2>Recent jobs</h2>"
        + table(
            "jobs",
            ["started", "state", "provider", "#seconds", "user", "prompt", "error"],
            _jobs(report),
            "no jobs yet",
        )
        + "<h2>Tenants: limits and budgets</h2>"
        + f"<p>Defaults: {tenants['default_user_limit']} images per user per day; ceiling per tenant: "
        + f"{esc(tenants['default_ceiling'] if tenants['default_ceiling'] is not None else 'none')}.</p>"
        + table(
            "tenants",
            ["tenant", "limits (per day)", "#budget", "#this month", "#images today"],
            _tenants(tenants),
            "no tenant has limits, a budget or usage this month",
        )
    )


def _jobs(report: dict[str, Any]) -> list[list[tuple[str, object]]]:
    return [
        [
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


def _tenants(tenants: dict[str, Any]) -> list[list[tuple[str, object]]]:
    rows: list[list[tuple[str, object]]] = []
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
            ]
        )
    return rows


def login_page(message: str = "") -> str:
    note = f'<p role="alert" id="login-error">{esc(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>hidream-bot · sign in</title><style>{STYLE}</style></head><body>"
        "<h1>hidream-bot · operators</h1>"
        f'{note}<form method="post" action="/admin/login" id="login">'
        "<p><label>Admin token (HIDREAM_ADMIN_TOKEN)<br>"
        '<input type="password" name="token" autocomplete="current-password" required autofocus '
        'style="width:100%;max-width:420px"></label></p>'
        '<p><button type="submit">Sign in</button></p></form></body></html>'
    )

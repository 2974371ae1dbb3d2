"""bot/web/admin_page.py and its templates alone: whatever the store holds, it is shown as text.

Every value below is markup or breaks out of an attribute; the page must carry none of it as markup.
(tests/test_admin_api.py and tests/test_admin_browser.py check the page as served and as a browser
reads it.)"""

from __future__ import annotations

import html
import re
import time
from typing import Any

from bot.web import admin_page
from bot.web.admin_page import login_page, page

HOSTILE = '<script>alert("x")</script>\'" onmouseover="alert(1)'


def report() -> dict[str, Any]:
    now = time.time()
    days = [
        {"day": time.strftime("%Y-%m-%d", time.gmtime(now - (29 - i) * 86400)), "providers": {}}
        for i in range(30)
    ]
    days[-1]["providers"] = {HOSTILE: {"images": 2, "usd": 0.04}}
    return {
        "now": now,
        "daily": {"days": days, "providers": [HOSTILE], "totals": {HOSTILE: {"images": 2, "usd": 0.04}}},
        "queue": {"queued": 0, "active": 0},
        "top": {
            "tenants": [{"tenant": HOSTILE, "images": 2, "usd": 0.04}],
            "users": [{"user": HOSTILE, "tenant": HOSTILE, "images": 2, "usd": 0.04}],
        },
        "failures": [{"cause": HOSTILE, "jobs": 1, "last_at": now}],
        "providers": [{"provider": HOSTILE, "state": HOSTILE, "failures": 1, "retry_at": None}],
        "jobs": [
            {
                "id": HOSTILE,
                "created_at": now,
                "state": "failed",
                "provider": HOSTILE,
                "seconds": 1.0,
                "surface": HOSTILE,
                "user": HOSTILE,
                "prompt": HOSTILE,
                "error": HOSTILE,
            }
        ],
        "tenants": {
            "default_user_limit": 25,
            "default_ceiling": None,
            "tenants": [
                {
                    "tenant": HOSTILE,
                    "limits": [{"scope": "user", "subject": HOSTILE, "daily_limit": 5, "set_by": HOSTILE}],
                    "budget_usd": None,
                    "month_usd": 0.0,
                    "today_images": 2,
                }
            ],
        },
    }


def test_every_value_from_the_store_is_text_never_markup() -> None:
    shown = page(report())
    assert "<script" not in shown and 'onmouseover="' not in shown
    # Shown where it belongs, escaped: in the tables, the legend, the chart's attributes and titles.
    escaped = html.escape(HOSTILE, quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")
    assert shown.count(escaped) >= 15
    bar = re.search(r'<rect [^>]*data-provider="([^"]*)"', shown)
    assert bar is not None and html.unescape(bar.group(1)) == HOSTILE


def test_the_sign_in_message_is_text() -> None:
    shown = login_page(HOSTILE)
    assert "<script" not in shown and 'id="login-error"' in shown
    assert login_page().count("login-error") == 0


def test_the_page_reloads_itself_every_30_seconds_and_the_sign_in_form_never() -> None:
    shown = page(report())
    assert admin_page.REFRESH_SECONDS == 30
    assert re.findall(r'<meta http-equiv="refresh"[^>]*>', shown) == [
        '<meta http-equiv="refresh" content="30">'
    ]
    # The sign-in form keeps what is being typed into it: it never reloads itself.
    assert "refresh" not in login_page()
    # And the page has no script with which it could do anything else.
    assert "<script" not in shown.replace(html.escape("<script"), "")


def test_the_recent_jobs_start_with_the_job_id_and_the_header_has_no_stray_dot() -> None:
    row = report()
    row["jobs"][0]["id"] = "0123456789abcdef0123456789abcdef"
    shown = page(row)
    table = shown[shown.index('<table id="jobs">') :]
    head = re.search(r"<tr>(.*?)</tr>", table, re.S)
    assert head is not None and re.findall(r"<th[^>]*>([^<]*)</th>", head[1])[:2] == ["job", "started"]
    assert '<td class="id">0123456789abcdef0123456789abcdef</td>' in table
    header = re.search(r"<header>(.*?)</header>", shown, re.S)
    assert header is not None
    # Only the title carries a separator: nothing dangles between the time and the Sign out button.
    words = re.sub(r"<[^>]+>", " ", header[1]).split()
    assert words.count("·") == 1 and words[-3:] == ["UTC", "Sign", "out"], words

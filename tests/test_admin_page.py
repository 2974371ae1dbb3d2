"""bot/web/admin_page.py and its templates alone: whatever the store holds, it is shown as text.

Every value below is markup or breaks out of an attribute; the page must carry none of it as markup.
(tests/test_admin_api.py and tests/test_admin_browser.py check the page as served and as a browser
reads it.)"""

from __future__ import annotations

import html
import re
import time
from typing import Any

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
    assert shown.count(escaped) >= 14
    bar = re.search(r'<rect [^>]*data-provider="([^"]*)"', shown)
    assert bar is not None and html.unescape(bar.group(1)) == HOSTILE


def test_the_sign_in_message_is_text() -> None:
    shown = login_page(HOSTILE)
    assert "<script" not in shown and 'id="login-error"' in shown
    assert login_page().count("login-error") == 0

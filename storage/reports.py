"""What the operators' page shows, read from the store with one SQL text for both backends:
images and spend per day and provider, top tenants and users, recent jobs, failures by cause, the
queue, and each tenant's limits and budget. Every function returns plain JSON-ready values, so the
page and the `/admin/api/...` endpoints serve the same figures.

Admin sessions that were ended (logout) are kept here too, so a replayed cookie is refused on any replica.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.model.jobs import SPENT, UNFINISHED, JobState
from storage.quota import MADE, utc_day
from storage.replicas import SEEN_FOR
from storage.store import Store

MB = 1024 * 1024

DAY = 86400.0
# How long an admin session lasts. Ended sessions are remembered in `seen_events`, which keeps a key for
# SEEN_FOR: a session must expire before its logout is forgotten.
SESSION_SECONDS = 12 * 3600
assert SESSION_SECONDS < SEEN_FOR
_ENDED = "admin-session-ended:"


def last_days(now: float, days: int) -> list[str]:
    """The UTC days from `days - 1` days ago to today, oldest first."""
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


async def daily(store: Store, days: int = 30) -> dict[str, Any]:
    """Images delivered and dollars spent per UTC day and provider, for the last `days` days."""
    span = last_days(store.now(), days)
    spent, args = store.database.dialect.among("l.state", SPENT)
    rows = await store.database.read_apart(
        "SELECT l.day, j.provider, SUM(l.images), SUM(l.cost_usd) FROM ledger l JOIN jobs j ON j.id = l.job_id "
        f"WHERE l.day >= ? AND {spent} GROUP BY l.day, j.provider",
        span[0],
        *args,
    )
    providers = sorted({str(r[1]) for r in rows})
    by_day: dict[str, dict[str, dict[str, Any]]] = {day: {} for day in span}
    for day, provider, images, cost in rows:
        if day in by_day:
            by_day[day][str(provider)] = {"images": int(images), "usd": round(float(cost), 4)}
    return {
        "days": [{"day": day, "providers": by_day[day]} for day in span],
        "providers": providers,
        "totals": {
            p: {
                "images": sum(d[p]["images"] for d in by_day.values() if p in d),
                "usd": round(sum(d[p]["usd"] for d in by_day.values() if p in d), 4),
            }
            for p in providers
        },
    }


async def top(store: Store, days: int = 30, limit: int = 10) -> dict[str, Any]:
    """The tenants and the users (in their tenant) that spent most in the last `days` days."""
    since = last_days(store.now(), days)[0]
    spent, args = store.database.dialect.among("state", SPENT)
    where = f"FROM ledger WHERE day >= ? AND {spent}"
    tenants = await store.database.read_apart(
        f"SELECT workspace_key, SUM(images), SUM(cost_usd), COUNT(*) {where} "
        "GROUP BY workspace_key ORDER BY 3 DESC, 2 DESC, 1 LIMIT ?",
        since,
        *args,
        limit,
    )
    users = await store.database.read_apart(
        f"SELECT workspace_key, user_key, SUM(images), SUM(cost_usd), COUNT(*) {where} "
        "GROUP BY workspace_key, user_key ORDER BY 4 DESC, 3 DESC, 2 LIMIT ?",
        since,
        *args,
        limit,
    )
    return {
        "tenants": [
            {"tenant": t, "images": int(i), "usd": round(float(c), 4), "jobs": int(n)}
            for t, i, c, n in tenants
        ],
        "users": [
            {"tenant": t, "user": u, "images": int(i), "usd": round(float(c), 4), "jobs": int(n)}
            for t, u, i, c, n in users
        ],
    }


def _prompt(request: str) -> str:
    try:
        return str(json.loads(request).get("prompt", ""))
    except (ValueError, AttributeError):
        return ""


async def recent_jobs(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs: state, provider, how long they took (or have taken so far), and their error."""
    now = store.now()
    rows = await store.database.read_apart(
        "SELECT id, surface, workspace_id, user_id, provider, state, request, error, created_at, updated_at "
        "FROM jobs ORDER BY created_at DESC, id LIMIT ?",
        limit,
    )
    jobs = []
    for job_id, surface, workspace, user, provider, state, request, error, created, updated in rows:
        finished = JobState(state) not in UNFINISHED
        jobs.append(
            {
                "id": job_id,
                "surface": surface,
                "workspace": workspace,
                "user": user,
                "provider": provider,
                "state": state,
                "prompt": _prompt(request),
                "error": error,
                "created_at": float(created),
                "seconds": round(float((updated if finished else now) - created), 3),
            }
        )
    return jobs


# The most images the moderation view shows at once (newest first).
MODERATION_LIMIT = 60


async def moderation(
    store: Store,
    *,
    tenant: str = "",
    channel: str = "",
    person: str = "",
    state: str = "",
    limit: int = MODERATION_LIMIT,
) -> list[dict[str, Any]]:
    """The newest jobs that made images, each with its tenant, its requester and prompt, and which of
    its images are still held (`held`: the others were deleted, by an operator or by retention).
    Filters: `tenant` (a ledger tenant key, `<surface>:<server>`), `channel` (the channel the job
    records), `person` (a user key, `<surface>:<id>`, or the platform's id alone) and `state` (a job
    state)."""
    where, args = ["j.result_media != '[]'"], []
    if tenant:
        where.append("l.workspace_key = ?")
        args.append(tenant)
    if channel:
        where.append("j.channel = ?")
        args.append(channel)
    if person:
        where.append("(l.user_key = ? OR j.user_id = ?)")
        args += [person, person]
    if state:
        where.append("j.state = ?")
        args.append(state)
    rows = await store.database.read_apart(
        "SELECT j.id, j.surface, j.workspace_id, j.user_id, j.state, j.request, j.result_media, j.created_at, "
        "l.workspace_key, l.user_key, j.channel FROM jobs j LEFT JOIN ledger l ON l.job_id = j.id "
        f"WHERE {' AND '.join(where)} ORDER BY j.created_at DESC, j.id LIMIT ?",
        *args,
        limit,
    )
    media = {str(r[0]): [str(m) for m in json.loads(r[6])] for r in rows}
    held = await store.held_media([m for ids in media.values() for m in ids]) if media else set()
    jobs = []
    for job_id, surface, workspace, user, job_state, request, _, created, tenant_key, user_key, chan in rows:
        jobs.append(
            {
                "id": job_id,
                "surface": surface,
                "workspace": workspace,
                "user": user,
                "tenant": tenant_key or (f"{surface}:{workspace}" if workspace else f"{surface}:dm:{user}"),
                "user_key": user_key or f"{surface}:{user}",
                "channel": chan,
                "state": job_state,
                "prompt": _prompt(request),
                "created_at": float(created),
                "media": [m for m in media[str(job_id)] if m in held],
                "removed": len([m for m in media[str(job_id)] if m not in held]),
            }
        )
    return jobs


async def record_moderation(
    store: Store, action: str, *, job_id: str | None, tenant: str, user_key: str, detail: str = ""
) -> None:
    """One operator's action on the moderation view, kept in `moderation_actions`."""
    async with store.database.transaction() as db:
        await db.execute(
            "INSERT INTO moderation_actions (at, action, job_id, tenant, user_key, detail) VALUES (?,?,?,?,?,?)",
            *(store.now(), action, job_id, tenant, user_key, detail),
        )


async def moderation_actions(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The operators' latest moderation actions, newest first."""
    rows = await store.database.read_apart(
        "SELECT at, action, job_id, tenant, user_key, detail FROM moderation_actions ORDER BY at DESC, id DESC LIMIT ?",
        limit,
    )
    return [
        {"at": float(r[0]), "action": r[1], "job_id": r[2], "tenant": r[3], "user_key": r[4], "detail": r[5]}
        for r in rows
    ]


async def failures(store: Store, days: int = 30, limit: int = 20) -> list[dict[str, Any]]:
    """Failed jobs of the last `days` days grouped by their error, the most frequent first."""
    rows = await store.database.read_apart(
        "SELECT COALESCE(error, ''), COUNT(*), MAX(updated_at) FROM jobs WHERE state = ? AND updated_at >= ? "
        "GROUP BY COALESCE(error, '') ORDER BY 2 DESC, 3 DESC LIMIT ?",
        JobState.FAILED.value,
        store.now() - days * DAY,
        limit,
    )
    return [{"cause": e or "(no message)", "jobs": int(n), "last_at": float(at)} for e, n, at in rows]


async def queue(store: Store) -> dict[str, Any]:
    """Unfinished jobs across every replica: waiting to be sent to a provider, and being worked."""
    states = sorted(s.value for s in UNFINISHED)
    unfinished, args = store.database.dialect.among("state", states)
    rows = await store.database.read_apart(
        f"SELECT state, COUNT(*) FROM jobs WHERE {unfinished} GROUP BY state", *args
    )
    counts = {s: 0 for s in states} | {str(s): int(n) for s, n in rows}
    waiting = counts[JobState.QUEUED.value]
    return {"queued": waiting, "active": sum(counts.values()) - waiting, "by_state": counts}


async def tenants(store: Store, *, default_limit: int, default_ceiling: int | None) -> dict[str, Any]:
    """Every tenant with a limit, a budget, usage this month or saved subjects: its limits, budget,
    spend and subject storage."""
    now = store.now()
    month, today = utc_day(now)[:7], utc_day(now)
    limits = await store.database.read_apart(
        "SELECT tenant, scope, subject, daily_limit, set_by FROM limits ORDER BY tenant, scope, subject, set_by"
    )
    budgets = dict(await store.database.read_apart("SELECT tenant, monthly_usd FROM budgets"))
    made, args = store.database.dialect.among("state", MADE)
    usage = await store.database.read_apart(
        "SELECT workspace_key, SUM(cost_usd), SUM(CASE WHEN day = ? THEN images ELSE 0 END) FROM ledger "
        f"WHERE substr(day, 1, 7) = ? AND {made} GROUP BY workspace_key",
        today,
        month,
        *args,
    )
    spent = {str(t): (float(c), int(i)) for t, c, i in usage}
    saved = {
        str(t): (int(n), int(b))
        for t, n, b in await store.database.read_apart(
            "SELECT tenant, COUNT(*), COALESCE(SUM(bytes), 0) FROM subjects GROUP BY tenant"
        )
    }
    names = sorted({str(r[0]) for r in limits} | set(budgets) | set(spent) | set(saved))
    return {
        "default_user_limit": default_limit,
        "default_ceiling": default_ceiling,
        "tenants": [
            {
                "tenant": name,
                "limits": [
                    {"scope": s, "subject": subj, "daily_limit": int(n), "set_by": by}
                    for t, s, subj, n, by in limits
                    if t == name
                ],
                "budget_usd": None if budgets.get(name) is None else float(budgets[name]),
                "month_usd": round(spent.get(name, (0.0, 0))[0], 4),
                "today_images": spent.get(name, (0.0, 0))[1],
                # Saved subjects and their images' size (bytes of subjects saved before sizes were
                # kept count once the tenant next saves one).
                "subjects": saved.get(name, (0, 0))[0],
                "subject_mb": round(saved.get(name, (0, 0))[1] / MB, 2),
            }
            for name in names
        ],
    }


async def end_session(store: Store, session_id: str) -> None:
    """Remember that an admin session was ended, until after it would have expired anyway."""
    await store.write(
        "INSERT INTO seen_events (key, seen_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        _ENDED + session_id,
        store.now(),
    )


async def session_ended(store: Store, session_id: str) -> bool:
    return (
        await store.database.fetchrow("SELECT 1 FROM seen_events WHERE key = ?", _ENDED + session_id)
        is not None
    )

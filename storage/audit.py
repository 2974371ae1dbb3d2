"""The audit export: one row per job in a date range (optionally one tenant's), streamed from the
database with constant memory (storage/connections.py's `stream`), as CSV or JSON Lines. Used by
`hidream-bot audit export` and the operators' page's download.

A row says when the job was asked, in which tenant and channel, by whom, with which prompt (left
empty, and `prompt_withheld` true, when its tenant withholds prompts: `policy export-prompts off`),
flags, kit (the style kit's name and the version it used, e.g. `watercolor v2`; empty: none),
project, provider, model, seed, what it cost (dollars charged: a job that failed or has not finished
yet was charged nothing), its state, who approved it (a reviewed channel's reviewer, as
`surface:user`; empty for a job no reviewer approved), and the job it was made from. After the jobs
come the operators' moderation actions of the same days (`kind` moderation: the job acted on, its
tenant, whose it was, and in `action` what was done).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bot.model.jobs import SPENT, tenant_of
from bot.model.requests import ImageRequest
from storage.store import Store

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
COLUMNS = (
    "job",
    "time",
    "tenant",
    "channel",
    "person",
    "prompt",
    "prompt_withheld",
    "flags",
    "kit",
    "project",
    "provider",
    "model",
    "seed",
    "cost_usd",
    "state",
    "approved_by",
    "parent",
    "kind",
    "action",
)
# Lines written out at a time.
LINES_PER_CHUNK = 200


def day_range(since: date, until: date | None) -> tuple[float, float]:
    """The UTC times from the start of `since` to the end of `until` (default: `since` onwards)."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    if until is None:
        return start.timestamp(), float("inf")
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    return start.timestamp(), end.timestamp()


def flags_of(request: ImageRequest) -> str:
    """The request's flags as a person would write them (the prompt apart)."""
    parts: list[str] = []
    if request.preset:
        parts.append(f"--size {request.preset}")
    elif request.width is not None and request.height is not None:
        parts.append(f"--size {request.width}x{request.height}")
    elif request.aspect is not None:
        parts.append(f"--ar {request.aspect[0]}:{request.aspect[1]}")
    for name, value in (
        ("n", request.n if request.n != 1 else None),
        ("seed", request.seed),
        ("steps", request.steps),
        ("cfg", request.guidance),
        ("format", request.format if request.format != "png" else None),
        ("model", request.model),
        ("provider", request.provider),
        ("project", request.project),
    ):
        if value is not None:
            parts.append(f"--{name} {value:g}" if isinstance(value, float) else f"--{name} {value}")
    parts += [f"--subject {s}" for s in request.subjects]
    if request.keep_aspect:
        parts.append("--keep-aspect")
    return " ".join(parts)


def kit_of(request: ImageRequest) -> str:
    """The style kit a job used, as `name vN`; empty when it used none."""
    if request.kit is None or request.kit_version is None:
        return ""
    return f"{request.kit} v{request.kit_version}"


_SELECT = """
SELECT j.id, j.created_at, j.surface, j.workspace_id, j.user_id, j.channel, j.request, j.project,
       j.provider, j.tier, j.seed, j.state, j.parent_job_id, l.cost_usd, l.state, p.withhold_prompts,
       a.decided_by
FROM jobs j
LEFT JOIN ledger l ON l.job_id = j.id
LEFT JOIN tenant_policy p ON p.tenant = l.workspace_key
LEFT JOIN approvals a ON a.job_id = j.id AND a.state = 'approved'
WHERE j.created_at >= ? AND j.created_at < ?{tenant}
ORDER BY j.created_at, j.id
"""


_MODERATION = """
SELECT at, action, job_id, tenant, user_key, detail FROM moderation_actions
WHERE at >= ? AND at < ?{tenant}
ORDER BY at, id
"""


async def rows(
    store: Store, *, since: float, until: float, tenant: str | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """Each job asked from `since` until before `until` (UTC timestamps), oldest first, as a row of
    COLUMNS (`kind` job), then the operators' moderation actions of that time (`kind` moderation);
    only `tenant`'s when given. Streamed: one batch of rows in memory at a time."""
    where, args = "", list[Any]([since, min(until, 1e15)])
    if tenant is not None:
        where = " AND l.workspace_key = ?"
        args.append(tenant)
    spent = {s.value for s in SPENT}
    async with aclosing(store.database.stream(_SELECT.format(tenant=where), *args)) as found:
        async for r in found:
            yield _row(r, spent)
    where = "" if tenant is None else " AND tenant = ?"
    async with aclosing(store.database.stream(_MODERATION.format(tenant=where), *args)) as found:
        async for r in found:
            yield _moderation_row(r)


def _moderation_row(r: tuple[Any, ...]) -> dict[str, Any]:
    """An operator's action from the moderation view (storage/reports.py): on which job, in which
    tenant (`*`: every tenant), whose; `action` says what and its detail."""
    (at, action, job_id, tenant, user_key, detail) = r
    return {
        **dict.fromkeys(COLUMNS, ""),
        "job": job_id or "",
        "time": datetime.fromtimestamp(float(at), UTC).isoformat(timespec="seconds"),
        "tenant": tenant,
        "person": user_key,
        "prompt_withheld": False,
        "seed": None,
        "cost_usd": 0.0,
        "kind": "moderation",
        "action": f"{action}: {detail}" if detail else action,
    }


def _row(r: tuple[Any, ...], spent: set[str]) -> dict[str, Any]:
    """One database row of `_SELECT` as a row of COLUMNS."""
    (job_id, created, surface, workspace, user, channel, request_json, project) = r[:8]
    (provider, tier, seed, state, parent, cost, ledger_state, withhold, approver) = r[8:]
    request = ImageRequest.model_validate_json(request_json)
    withheld = bool(withhold)
    return {
        "job": job_id,
        "time": datetime.fromtimestamp(float(created), UTC).isoformat(timespec="seconds"),
        "tenant": tenant_of(surface, workspace, user),
        "channel": channel,
        "person": f"{surface}:{user}",
        "prompt": "" if withheld else request.prompt,
        "prompt_withheld": withheld,
        "flags": flags_of(request),
        "kit": kit_of(request),
        "project": project,
        "provider": provider,
        "model": tier,
        "seed": seed,
        "cost_usd": round(float(cost), 6) if ledger_state in spent and cost is not None else 0.0,
        "state": state,
        "approved_by": f"{surface}:{approver}" if approver else "",
        "parent": parent or "",
        "kind": "job",
        "action": "",
    }


async def export(
    store: Store, fmt: Format, *, since: float, until: float, tenant: str | None = None
) -> AsyncGenerator[str, None]:
    """The export as text, a chunk of lines at a time (CSV starts with its header)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if fmt == "csv":
        writer.writeheader()
    lines = 0
    async with aclosing(rows(store, since=since, until=until, tenant=tenant)) as found:
        async for row in found:
            if fmt == "csv":
                writer.writerow({**row, "prompt_withheld": "yes" if row["prompt_withheld"] else "no"})
            else:
                buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
            lines += 1
            if lines % LINES_PER_CHUNK == 0:
                yield _drain(buffer)
    tail = _drain(buffer)
    if tail:
        yield tail


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text

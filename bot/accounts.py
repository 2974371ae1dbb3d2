"""`hidream-bot report` and `hidream-bot audit export`: what the operators hand to finance and legal.

`report [--since DATE] [--until DATE] [--by tenant|channel|project|person|provider] [--tenant T]
[--json]` prints images and dollars spent (delivered jobs) per group over the UTC days from `since`
(default: the first of this month) to `until` (default: today), the most spent first.

`audit export --since DATE [--until DATE] [--tenant T] --format csv|jsonl` writes one row per job
asked in those days to standard output, streamed: however many jobs there are, the command holds a
few hundred rows at a time (storage/audit.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import aclosing
from datetime import UTC, date, datetime

from bot.app import open_store
from bot.model.config import Settings
from storage import audit
from storage.costs import BY, costs

_TENANT = re.compile(r"[a-z][a-z0-9_-]*:\S+")
WHERE = "a server or workspace as SURFACE:ID: the surface's name and its id there, e.g. console:local"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write it as YYYY-MM-DD") from None


def _tenant(text: str) -> str:
    if not _TENANT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not {WHERE}")
    return text


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="images and dollars by tenant, channel, project, person or provider"
    )
    report.add_argument(
        "--since", type=_day, help="first UTC day, YYYY-MM-DD (default: the 1st of this month)"
    )
    report.add_argument("--until", type=_day, help="last UTC day, YYYY-MM-DD (default: today)")
    report.add_argument("--by", choices=BY, default="tenant", help="how to group (default: tenant)")
    report.add_argument("--tenant", type=_tenant, help="only this server or workspace: " + WHERE)
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    audit_ = sub.add_parser("audit", help="the audit trail of jobs")
    actions = audit_.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="one row per job, streamed to standard output")
    export.add_argument("--since", type=_day, required=True, help="first UTC day, YYYY-MM-DD")
    export.add_argument("--until", type=_day, help="last UTC day, YYYY-MM-DD (default: no end)")
    export.add_argument("--tenant", type=_tenant, help="only this server or workspace: " + WHERE)
    export.add_argument("--format", choices=audit.FORMATS, required=True, help="csv or jsonl")


def problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, before the database is opened."""
    if args.until is not None and args.since is not None and args.until < args.since:
        return f"--until {args.until} is before --since {args.since}"
    return None


async def report(settings: Settings, args: argparse.Namespace) -> int:
    today = datetime.now(UTC).date()
    since: date = args.since or today.replace(day=1)
    until: date = args.until or max(today, since)
    async with open_store(settings) as store:
        found = await costs(
            store, args.by, since=since.isoformat(), until=until.isoformat(), tenant=args.tenant
        )
    if args.json:
        print(
            json.dumps(
                {
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "by": args.by,
                    "rows": [r.as_json() for r in found],
                }
            )
        )
        return 0
    print(f"images and dollars spent from {since} to {until} (UTC), by {args.by}")
    head = ("tenant", args.by) if args.by not in ("tenant", "provider") else (args.by,)
    lines = [(*head, "images", "dollars", "jobs")]
    for r in found:
        named = (r.tenant, r.key or "(none)") if len(head) == 2 else (r.key,)
        lines.append((*named, str(r.images), f"${r.usd:.4f}", str(r.jobs)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print(
            "  ".join(
                cell.ljust(w) if i < len(head) else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    total_images, total_usd = sum(r.images for r in found), sum(r.usd for r in found)
    print(f"total: {total_images} image(s), ${total_usd:.4f}")
    return 0


async def export(settings: Settings, args: argparse.Namespace) -> int:
    since, until = audit.day_range(args.since, args.until)
    out = sys.stdout
    async with open_store(settings) as store:
        chunks = audit.export(store, args.format, since=since, until=until, tenant=args.tenant)
        async with aclosing(chunks):
            async for chunk in chunks:
                out.write(chunk)
                out.flush()
    return 0

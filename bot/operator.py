"""`hidream-bot quota ...`: what an operator (whoever runs the bot and pays for it) sets, anywhere.

A user is `SURFACE:ID` (the surface's name and the platform's id of the person, e.g. console:local); a
tenant is a server or workspace `SURFACE:ID` (the surface's name and the platform's id of the server or
workspace), or a user's direct messages `SURFACE:dm:ID`. Tenant admins manage their own members on their platform; an
operator's limits win over theirs, and only an operator sets a tenant's ceiling and budget (and a project's
budget within a tenant: `quota budget --tenant T --project TAG --usd N`). Admins may give a member
at most HIDREAM_ADMIN_MAX_LIMIT images a day (default: HIDREAM_DAILY_IMAGE_QUOTA); an operator allows more in one
tenant with `quota admin-max`, and everywhere with the setting.
"""

from __future__ import annotations

import argparse
import re
import sys

from bot.app import open_store
from bot.jobs.quota_policy import check_budget, check_images
from bot.model.config import Settings
from bot.model.errors import BadInput
from bot.model.requests import check_project_tag
from storage.quota import EVERY_TENANT, QuotaStatus
from storage.store import Store

_ID = re.compile(r"[a-z][a-z0-9_-]*:\S+")
WHO = "a user as SURFACE:ID: the surface's name and the platform's user id, e.g. console:local"
WHERE = (
    "a server or workspace as SURFACE:ID: the surface's name and the platform's id for it, e.g. console:local"
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = sub.add_parser("quota", help="operator commands: limits, ceilings, budgets, grants, usage")
    qs = q.add_subparsers(dest="action", required=True)
    show = qs.add_parser("show", help="a user's limits and usage (in each server they used), or a tenant's")
    show.add_argument("--user", help=WHO)
    _tenant(show, required=False)
    st = qs.add_parser("set", help="a user's daily limit (in one tenant, or in all), or a tenant's members'")
    st.add_argument("--user", help=WHO + "; without --tenant: in every server and workspace")
    _tenant(st, required=False)
    _amount(st, "--limit", int, "images per UTC day")
    ce = qs.add_parser(
        "ceiling", help="the images a whole tenant may make per UTC day (admins cannot lift it)"
    )
    _tenant(ce, required=True)
    _amount(ce, "--limit", int, "images per UTC day for the whole server or workspace")
    am = qs.add_parser(
        "admin-max",
        help="the highest daily limit a tenant's admins may give a member (default HIDREAM_ADMIN_MAX_LIMIT)",
    )
    _tenant(am, required=True)
    _amount(am, "--limit", int, "images per UTC day an admin there may give one member")
    bu = qs.add_parser("budget", help="a tenant's monthly budget in US dollars, or one project's in it")
    _tenant(bu, required=True)
    bu.add_argument("--project", help="the project's tag: its own monthly budget, within the tenant's")
    _amount(bu, "--usd", float, "dollars per UTC month")
    gr = qs.add_parser("grant", help="extra images for today, in one tenant")
    gr.add_argument("--user", required=True, help=WHO)
    _tenant(gr, required=True)
    gr.add_argument("--images", type=int, required=True)
    rs = qs.add_parser("reset", help="forget today's usage, in one tenant")
    rs.add_argument("--user", required=True, help=WHO)
    _tenant(rs, required=True)


def _tenant(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--tenant", "--workspace", dest="tenant", required=required, help=WHERE)


def _amount(p: argparse.ArgumentParser, flag: str, kind: type, text: str) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(flag, dest="amount", type=kind, help=text)
    group.add_argument("--clear", action="store_true", help="remove it")


def problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, before the database is opened."""
    for name in ("user", "tenant"):
        value = getattr(args, name, None)
        if value is not None and not _ID.fullmatch(value):
            return f"--{name} {value!r} is not SURFACE:ID (e.g. console:local)"
    if args.action == "show" and not (args.user or args.tenant):
        return "give --user or --tenant"
    if args.action == "set" and not (args.user or args.tenant):
        return "give --user, --tenant or both"
    return None


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        try:
            await _act(store, args)
        except BadInput as exc:
            print(f"hidream-bot quota: {exc.user_message}", file=sys.stderr)
            return 2
    return 0


async def _act(store: Store, args: argparse.Namespace) -> None:
    amount = None if getattr(args, "clear", False) else getattr(args, "amount", None)
    said = "cleared" if amount is None else f"set to {amount}"
    (check_budget if args.action == "budget" else check_images)(amount)
    check_images(getattr(args, "images", None))
    if args.action == "show":
        await _show(store, args.user, args.tenant)
    elif args.action == "set" and args.user:
        where = args.tenant or EVERY_TENANT
        await store.set_limit(where, "user", args.user, amount, by="operator")
        print(f"user {args.user} in {_name(where)}: daily limit {said}")
    elif args.action == "set":
        await store.set_limit(args.tenant, "members", "", amount, by="operator")
        print(f"workspace {args.tenant}: daily limit {said}")
    elif args.action == "ceiling":
        await store.set_limit(args.tenant, "ceiling", "", amount, by="operator")
        print(f"workspace {args.tenant}: ceiling {said}")
    elif args.action == "admin-max":
        await store.set_limit(args.tenant, "admin_max", "", amount, by="operator")
        print(f"workspace {args.tenant}: the highest limit its admins may give a member {said}")
    elif args.action == "budget" and args.project is not None:
        project = check_project_tag(args.project)
        await store.set_project_budget(args.tenant, project, amount)
        print(
            f"workspace {args.tenant}, project {project}: monthly budget "
            + ("cleared" if amount is None else f"set to ${amount:.2f}")
        )
    elif args.action == "budget":
        await store.set_budget(args.tenant, amount)
        print(
            f"workspace {args.tenant}: monthly budget "
            + ("cleared" if amount is None else f"set to ${amount:.2f}")
        )
    elif args.action == "grant":
        await store.grant(args.tenant, args.user, args.images)
        print(f"{args.user}: {args.images} extra image(s) for today in {args.tenant}")
    else:
        await store.reset(args.tenant, args.user)
        print(f"{args.user}: today's usage in {args.tenant} reset")


def _name(tenant: str) -> str:
    return "every server and workspace" if tenant == EVERY_TENANT else tenant


async def _show(store: Store, user: str | None, tenant: str | None) -> None:
    if user:
        tenants = [tenant] if tenant else await store.tenants_of(user)
        for where in tenants:
            print(_user_line(user, where, await store.quota(user, where)))
        if not tenants:
            print(f"{user}: no images yet in any server or workspace")
        images, cost = await store.spend(user, scope="user")
        print(f"all-time: {images} image(s), ${cost:.4f}")
    if tenant and not user:
        status = await store.quota("", tenant)
        ceiling = "none" if status.ceiling is None else f"{status.tenant_used} of {status.ceiling} made today"
        budget = (
            "none"
            if status.budget_usd is None
            else f"${status.month_spent_usd:.4f} of ${status.budget_usd:.2f}"
        )
        print(
            f"{tenant} (workspace): ceiling {ceiling}; monthly budget {budget}; "
            f"admins may give a member at most {status.admin_max} a day"
        )
        for month in await store.project_budgets(tenant):
            print(
                f"  project {month.project}: ${month.spent_usd:.4f} of ${month.budget_usd or 0:.2f} this month"
            )
        for scope, subject, limit, by in await store.limits(tenant):
            print(f"  {scope} {subject or '(every member)'}: {limit} a day, set by an {by}")
        images, cost = await store.spend(tenant, scope="workspace")
        print(f"{tenant} (workspace) all-time: {images} image(s), ${cost:.4f}")


def _user_line(user: str, tenant: str, status: QuotaStatus) -> str:
    granted = f" + {status.granted} granted today" if status.granted else ""
    line = (
        f"{user} in {tenant}: {status.used} used of {status.limit} today, {status.remaining} left; "
        f"resets {status.resets_at:%Y-%m-%d %H:%M} UTC; limit {status.limit - status.granted} from "
        f"{status.source}{granted}"
    )
    if status.ceiling is not None:
        line += f"; the tenant's ceiling: {status.tenant_used} of {status.ceiling} made today"
    if status.person_quota is not None:
        line += f"; in every tenant: {status.person_used} of {status.person_quota} made today"
    return line

"""The operators' page at /admin and its JSON under /admin/api/, when HIDREAM_ADMIN_TOKEN is set (else
none of it is routed: every /admin path is a 404).

Who may see it: a tool that sends `Authorization: Bearer <token>`, or a browser signed in through the
login form. Signing in sets a session cookie that is not the token: `<id>.<expiry>.<HMAC>`, signed with
a key derived from the store's kept secret and the token, so every replica accepts it, and changing the
token ends every session. Signing out remembers the session id in the store (storage/reports.py), so a
copied cookie stops working too. Tokens are checked by the server's `SignInGate` (bot/web/gate.py):
in constant time, wrong ones limited per address and per guess on each replica, the right one never
turned away.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from aiohttp import web

from bot.jobs import moderation
from bot.model.config import Settings
from bot.model.jobs import JobState
from bot.web.admin_page import login_page, moderation_page, page
from bot.web.admin_queries import (
    EXPORT_TYPES,
    CostQuery,
    ExportQuery,
    export_defaults,
    read_cost_query,
    read_export_query,
)
from bot.web.gate import bearer_token
from bot.web.server import HttpServer, limit_body
from storage import audit, reports
from storage.approvals import pending_approvals
from storage.costs import costs
from storage.kits import kits_in_use
from storage.store import Store

log = logging.getLogger(__name__)

COOKIE = "hidream_admin"
# A sign-in form holds one token: a few hundred bytes are plenty.
LOGIN_MAX_BODY = 4096
# How long a thumbnail's signed link on the moderation view lasts.
THUMB_SECONDS = 900
FILTERS = ("tenant", "channel", "person", "state")
SECURITY_HEADERS = {
    # The page has no script and loads nothing but the moderation view's thumbnails (this server's own
    # signed media links): forbid all the rest, so nothing injected could run.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminSite:
    def __init__(
        self, settings: Settings, server: HttpServer, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.token = settings.admin_token.get_secret_value().encode()
        self.secure = settings.public_url.startswith("https://")
        self.settings = settings
        self.server = server
        self.clock = clock

    def store(self) -> Store:
        if self.server.engine is None:
            raise web.HTTPServiceUnavailable(text="starting")
        return self.server.engine.store

    # --- who is asking ---------------------------------------------------------------------------

    async def _key(self) -> bytes:
        return hmac.new(await self.store().secret("admin-session"), self.token, hashlib.sha256).digest()

    async def new_session(self) -> str:
        session_id = secrets.token_urlsafe(18)
        expires = int(self.clock()) + reports.SESSION_SECONDS
        body = f"{session_id}.{expires}"
        return f"{body}.{hmac.new(await self._key(), body.encode(), hashlib.sha256).hexdigest()}"

    async def session(self, request: web.Request) -> str | None:
        """The id of the request's valid session, if it has one."""
        cookie = request.cookies.get(COOKIE, "")
        session_id, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        if not (session_id and expires.isdigit() and signature):
            return None
        wanted = hmac.new(await self._key(), f"{session_id}.{expires}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(wanted, signature) or int(expires) <= self.clock():
            return None
        if await reports.session_ended(self.store(), session_id):
            return None
        return session_id

    def guarded(self, handler: Handler, *, api: bool) -> Handler:
        """`handler`, served only to a bearer of the token or a signed-in browser."""

        async def guard(request: web.Request) -> web.StreamResponse:
            given = bearer_token(request)
            if given is None:
                if await self.session(request) is not None:
                    return with_headers(await handler(request))
                return with_headers(refused() if api else see_other("/admin/login"))
            # A wrong bearer token counts as a wrong sign-in: guessing costs the same either way.
            verdict = self.server.gate.check(request, given, self.token, where="admin")
            if verdict.outcome == "in":
                return with_headers(await handler(request))
            if verdict.outcome == "limited":
                limited = web.json_response({"error": "too many wrong tokens from here"}, status=429)
                limited.headers["Retry-After"] = str(verdict.retry_after)
                return with_headers(limited)
            return with_headers(refused())

        return guard

    # --- signing in and out ----------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return with_headers(web.Response(text=login_page(), content_type="text/html"))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("token", "")).strip().encode()
        verdict = self.server.gate.check(request, given, self.token, where="admin sign-in")
        if verdict.outcome == "limited":
            page_ = login_page("Too many wrong tokens from here: wait a few minutes and try again.")
            response = web.Response(text=page_, content_type="text/html", status=429)
            response.headers["Retry-After"] = str(verdict.retry_after)
            return with_headers(response)
        if verdict.outcome == "wrong":
            page_ = login_page("That is not the admin token.")
            return with_headers(web.Response(text=page_, content_type="text/html", status=401))
        response = see_other("/admin")
        response.set_cookie(
            COOKIE,
            await self.new_session(),
            max_age=reports.SESSION_SECONDS,
            path="/admin",
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )
        return with_headers(response)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session_id = await self.session(request)
        if session_id is not None:
            await reports.end_session(self.store(), session_id)
        response = see_other("/admin/login")
        response.del_cookie(COOKIE, path="/admin")
        return with_headers(response)

    # --- what it shows ---------------------------------------------------------------------------

    async def overview(self) -> dict[str, Any]:
        """Every figure of the page, as the API endpoints serve them one by one."""
        store = self.store()
        return {
            "now": float(store.clock()),
            "daily": await reports.daily(store),
            "top": await reports.top(store),
            "jobs": await reports.recent_jobs(store),
            "failures": await reports.failures(store),
            "queue": await reports.queue(store),
            "tenants": await self.tenants(),
            "providers": self.providers(),
            "approvals": await pending_approvals(store),
            "kits": await kits_in_use(store),
        }

    def providers(self) -> list[dict[str, Any]]:
        """Each configured provider's circuit breaker on this replica, in order of preference."""
        engine = self.server.engine
        if engine is None:
            return []
        return [
            {"provider": name, "state": b.state, "failures": b.consecutive_failures, "retry_at": b.retry_at}
            for name, b in engine.provider_health().items()
        ]

    async def tenants(self) -> dict[str, Any]:
        figures = await reports.tenants(
            self.store(),
            default_limit=self.settings.daily_image_quota,
            default_ceiling=self.settings.daily_workspace_quota,
        )
        figures["max_subjects"] = self.settings.max_subjects
        figures["subject_storage_mb"] = self.settings.subject_storage_mb
        return figures

    async def page(self, request: web.Request) -> web.StreamResponse:
        report = await self.overview()
        wanted = read_cost_query(request.query, self.store().now())
        report["costs"] = await self.costs(wanted) if isinstance(wanted, CostQuery) else {"error": wanted}
        report["export"] = export_defaults(self.store().now())
        return web.Response(text=page(report), content_type="text/html")

    async def costs(self, wanted: CostQuery) -> dict[str, Any]:
        """Images and dollars by `wanted.by` over its days (storage/costs.py)."""
        found = await costs(
            self.store(), wanted.by, since=wanted.since, until=wanted.until, tenant=wanted.tenant
        )
        return {**wanted.as_json(), "rows": [r.as_json() for r in found]}

    async def costs_api(self, request: web.Request) -> web.StreamResponse:
        wanted = read_cost_query(request.query, self.store().now())
        if not isinstance(wanted, CostQuery):
            return web.json_response({"error": wanted}, status=400)
        return web.json_response(await self.costs(wanted))

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The audit export as a download, streamed as the database yields its rows."""
        wanted = read_export_query(request.query)
        if not isinstance(wanted, ExportQuery):
            return web.json_response({"error": wanted}, status=400)
        since, until = audit.day_range(wanted.since, wanted.until)
        response = web.StreamResponse(
            headers={
                "Content-Type": EXPORT_TYPES[wanted.format],
                "Content-Disposition": f'attachment; filename="{wanted.filename()}"',
            }
        )
        with_headers(response)
        await response.prepare(request)
        chunks = audit.export(self.store(), wanted.format, since=since, until=until, tenant=wanted.tenant)
        async with aclosing(chunks):  # a download the browser gave up on ends the read at once
            async for chunk in chunks:
                await response.write(chunk.encode())
        await response.write_eof()
        return response

    def api(self, read: Callable[[Store], Awaitable[Any]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.json_response(await read(self.store()))

        return handler

    # --- the moderation view -------------------------------------------------------------------

    async def csrf_token(self, request: web.Request) -> str:
        """The token the moderation view's forms carry: bound to the browser's session ("" without one)."""
        session_id = await self.session(request)
        if session_id is None:
            return ""
        return hmac.new(await self._key(), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()

    async def moderation_view(self, request: web.Request) -> web.StreamResponse:
        filters = {name: request.query.get(name, "").strip()[:200] for name in FILTERS}
        states = [s.value for s in JobState]
        if filters["state"] not in states:
            filters["state"] = ""
        items = await reports.moderation(
            self.store(),
            tenant=filters["tenant"],
            channel=filters["channel"],
            person=filters["person"],
            state=filters["state"],
        )
        runner = self.server.runner
        now = self.clock()
        for item in items:
            signer = runner.signer if runner is not None else None
            item["thumbs"] = (
                [signer.path(m, now=now, ttl=THUMB_SECONDS) for m in item["media"]] if signer else []
            )
        html = moderation_page(
            items,
            filters=filters,
            states=states,
            actions=await reports.moderation_actions(self.store()),
            notice=request.query.get("done", ""),
            csrf=await self.csrf_token(request),
        )
        return web.Response(text=html, content_type="text/html")

    async def moderate(self, request: web.Request) -> web.StreamResponse:
        """POST /admin/moderation/delete or /block: a signed-in browser's form must carry its session's
        CSRF token (a bearer of the token sends no cookie, so it needs none)."""
        form = await request.post()
        if bearer_token(request) is None:
            wanted = await self.csrf_token(request)
            if not (wanted and hmac.compare_digest(wanted, str(form.get("csrf", "")))):
                return web.json_response({"error": "the form is stale: reload the page"}, status=403)
        engine, runner = self.server.engine, self.server.runner
        if engine is None or runner is None:
            raise web.HTTPServiceUnavailable(text="starting")
        job = await self.store().job(str(form.get("job", "")))
        if job is None:
            return see_other("/admin/moderation?done=not-found")
        if request.match_info["action"] == "delete":
            done = await moderation.take_down(engine, runner.surfaces, job)
            notice = "deleted" if done.withdrawn else "deleted-here"
        else:
            everywhere = form.get("where") == "everywhere"
            await moderation.block(engine, job, "everywhere" if everywhere else "tenant")
            notice = "blocked-everywhere" if everywhere else "blocked"
        return see_other(f"/admin/moderation?done={notice}")

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "no such page"}, status=404)


def refused() -> web.Response:
    answer = web.json_response({"error": "sign in or send Authorization: Bearer <token>"}, status=401)
    answer.headers["WWW-Authenticate"] = 'Bearer realm="hidream-bot admin"'
    return answer


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def with_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def add_admin_routes(server: HttpServer, settings: Settings) -> AdminSite | None:
    """Route the operators' page when HIDREAM_ADMIN_TOKEN is set; otherwise route nothing."""
    if not settings.admin_token.get_secret_value():
        return None
    site = AdminSite(settings, server, clock=server.clock)
    router = server.app.router
    router.add_get("/admin/login", site.login_form)
    router.add_post("/admin/login", limit_body(site.login, LOGIN_MAX_BODY))
    router.add_post("/admin/logout", limit_body(site.guarded(site.logout, api=False), LOGIN_MAX_BODY))
    router.add_get("/admin", site.guarded(site.page, api=False))
    router.add_get("/admin/export", site.guarded(site.export, api=False))
    router.add_get("/admin/api/costs", site.guarded(site.costs_api, api=True))
    router.add_get("/admin/moderation", site.guarded(site.moderation_view, api=False))
    router.add_post(
        "/admin/moderation/{action:delete|block}",
        limit_body(site.guarded(site.moderate, api=False), LOGIN_MAX_BODY),
    )
    apis: dict[str, Callable[[Store], Awaitable[Any]]] = {
        "overview": lambda _store: site.overview(),
        "daily": reports.daily,
        "top": reports.top,
        "jobs": reports.recent_jobs,
        "failures": reports.failures,
        "queue": reports.queue,
        "tenants": lambda _store: site.tenants(),
        "moderation": reports.moderation,
        "moderation-actions": reports.moderation_actions,
        "approvals": pending_approvals,
        "kits": kits_in_use,
    }
    for name, read in apis.items():
        router.add_get(f"/admin/api/{name}", site.guarded(site.api(read), api=True))
    # Anything else under /admin: refused without credentials, like the rest; not found with them.
    router.add_route("*", "/admin/{tail:.*}", site.guarded(site.not_found, api=True))
    return site

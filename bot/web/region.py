"""The region editor's page, GET and POST /edit/<link>, and its script and style under /edit/assets/.

The page is a Jinja2 template (autoescape) whose script and style are files this server serves: its
Content-Security-Policy lets the page load nothing from anywhere else, run no inline script, and send
its form only here. It works by touch (pointer events; see bot/web/static/region.js). The link in the
address is the requester's pass (bot/usecases/region.py): the form sends it back, so no other site can
make a browser send this form. What the link opens and admits is the `Desk`'s to say (the use case,
wired in bot/app.py); every refusal is shown on the page in our words.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import jinja2
from aiohttp import web

from bot import words
from bot.model.errors import QuotaExceeded, UserFacingError
from bot.web.server import HttpServer, limit_body

# A rectangle and an instruction: a few KB at most.
EDIT_MAX_BODY = 16 * 1024
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"region.js": "text/javascript", "region.css": "text/css"}


def policy(img_src: str = "'self'") -> str:
    """The page's Content-Security-Policy: this server's own script, style, form and pictures only."""
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {img_src}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


HEADERS = {
    "Content-Security-Policy": policy(),
    "X-Content-Type-Options": "nosniff",
    # The address holds the pass: never sent on to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class EditorView(Protocol):
    """What the page shows of one image (bot.usecases.region.Editor)."""

    @property
    def token(self) -> str: ...
    @property
    def image_url(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def prompt(self) -> str: ...
    @property
    def text_max(self) -> int: ...


class Desk(Protocol):
    async def open(self, token: str, *, now: float) -> EditorView: ...
    async def submit(self, token: str, form: Mapping[str, str], *, now: float) -> object: ...


def render(editor: EditorView | None, *, message: str = "", accepted: bool = False, text: str = "") -> str:
    return _templates.get_template("region.html").render(
        editor=editor, message=message, accepted=accepted, text=text, w=words
    )


def _status(exc: UserFacingError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    return 429 if isinstance(exc, QuotaExceeded) else 400


class RegionPage:
    """`redirects`: media links answer with a redirect to the object store's own presigned URL
    (HIDREAM_MEDIA_REDIRECT), so the picture comes from there: pictures from other hosts are allowed
    then (scripts, styles and the form never)."""

    def __init__(
        self, desk: Desk, clock: Callable[[], float] = time.time, *, redirects: bool = False
    ) -> None:
        self.desk = desk
        self.clock = clock
        self.headers = {
            **HEADERS,
            "Content-Security-Policy": policy("'self' https: http:" if redirects else "'self'"),
        }

    def _page(self, body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html", headers=self.headers)

    async def show(self, request: web.Request) -> web.Response:
        try:
            editor = await self.desk.open(request.match_info["token"], now=self.clock())
        except UserFacingError as exc:
            return self._page(render(None, message=exc.user_message), _status(exc))
        return self._page(render(editor))

    async def send(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        text = form.get("text", "")
        try:
            if form.get("token") != token:  # the form of this very page, and no other
                raise UserFacingError(words.REGION_LINK_INVALID)
            await self.desk.submit(token, form, now=self.clock())
        except UserFacingError as exc:
            try:
                editor = await self.desk.open(token, now=self.clock())
            except UserFacingError:
                editor = None
            return self._page(render(editor, message=exc.user_message, text=text), _status(exc))
        return self._page(render(None, accepted=True))

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        body = (STATIC / name).read_bytes()
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
        return web.Response(body=body, content_type=ASSETS[name], headers=headers)


def add_region_routes(server: HttpServer, desk: Desk, *, redirects: bool = False) -> None:
    page = RegionPage(desk, server.clock, redirects=redirects)
    server.app.router.add_get("/edit/assets/{name}", page.asset)
    server.app.router.add_get("/edit/{token}", page.show)
    server.app.router.add_post("/edit/{token}", limit_body(page.send, EDIT_MAX_BODY))

"""`hidream-bot run` with one alternative put in place, for bench/compare.py: the alternatives live here,
never in the bot.

    python -m bench.variant NAME run

NAME is one of VARIANTS: `as-is` (the bot unchanged), `httpx-transport` (the providers' client over
httpx's own transport), `aiohttp-transport` (over the AiohttpTransport the bot had before issue 18),
`no-o-direct` (media files written through the page cache only, where durable.py still has O_DIRECT).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (bench/compare.py does), so the checkout it sits in comes first, before the installed
# one; and not this folder, whose http.py would stand for the standard library's http.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from collections.abc import Callable  # noqa: E402

import httpx  # noqa: E402


def _httpx_transport() -> None:
    import bot.app

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
            ),
            timeout=httpx.Timeout(30.0, connect=10.0),
            headers={"User-Agent": "hidream-bot/0.1"},
        )

    bot.app.provider_client = client  # type: ignore[attr-defined,assignment]


def _aiohttp_transport() -> None:
    import bot.app
    from bot import transport

    made: Callable[..., httpx.AsyncBaseTransport] = getattr(transport, "AiohttpTransport")  # noqa: B009

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=made(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)),
            timeout=httpx.Timeout(30.0, connect=10.0),
            headers={"User-Agent": "hidream-bot/0.1"},
        )

    bot.app.provider_client = client  # type: ignore[attr-defined,assignment]


def _no_o_direct() -> None:
    from storage import durable

    if not hasattr(durable, "_DIRECT"):
        raise SystemExit("storage/durable.py has no O_DIRECT to turn off")
    durable._DIRECT = 0


VARIANTS: dict[str, Callable[[], None]] = {
    "as-is": lambda: None,
    "httpx-transport": _httpx_transport,
    "aiohttp-transport": _aiohttp_transport,
    "no-o-direct": _no_o_direct,
}


def main() -> int:
    VARIANTS[sys.argv[1]]()
    from bot.cli import main as bot_main

    return bot_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

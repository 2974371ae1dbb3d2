"""`hidream-bot run` with one alternative put in place, for bench/compare.py: the alternatives live here,
never in the bot.

    python -m bench.variant NAME run

NAME is one of VARIANTS: `as-is` (the bot unchanged), `no-o-direct` (media files written through the
page cache only, where durable.py still has O_DIRECT). The transports measured before the seam
(`httpx-transport`, `aiohttp-transport`) swapped the providers' httpx client; the seam is no httpx
client, so the bot before it is now run from a checkout of its own (bench/compare.py, `as-is@DIR`).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (bench/compare.py does), so the checkout it sits in comes first, before the installed
# one; and not this folder, whose http.py would stand for the standard library's http.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from collections.abc import Callable  # noqa: E402


def _no_o_direct() -> None:
    from storage import durable

    if not hasattr(durable, "_DIRECT"):
        raise SystemExit("storage/durable.py has no O_DIRECT to turn off")
    durable._DIRECT = 0


VARIANTS: dict[str, Callable[[], None]] = {
    "as-is": lambda: None,
    "no-o-direct": _no_o_direct,
}


def main() -> int:
    VARIANTS[sys.argv[1]]()
    from bot.cli import main as bot_main

    return bot_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

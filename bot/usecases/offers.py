"""What the running providers offer, as people read it: each one's capability table (models, sizes,
knobs, price), from the same data every request is checked against (bot/providers/capabilities.py).
`hidream-bot providers` prints it for every provider installed; a surface's help shows the running
ones'."""

from __future__ import annotations

from collections.abc import Iterable

from bot.providers.base import Provider
from bot.providers.capabilities import table
from bot.usecases.actor import Reply


def offered(providers: Iterable[Provider]) -> Reply:
    found = [p.capabilities for p in providers if p.capabilities is not None]
    return Reply(table(found))

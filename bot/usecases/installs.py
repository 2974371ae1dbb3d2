"""Where a surface that is installed into tenants by OAuth keeps each installation (its token,
encrypted) and its short-lived OAuth states: the bot's own database, reached from here so that no
adapter imports the store."""

from __future__ import annotations

from typing import Protocol

from storage.installations import BotInstall as BotInstall
from storage.installations import Installations as Installations
from storage.store import Store


class HasStore(Protocol):
    @property
    def store(self) -> Store: ...


def installations(engine: HasStore) -> Installations:
    return Installations(engine.store)

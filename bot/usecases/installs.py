"""Where a surface that is installed into tenants by OAuth keeps each installation (its token,
sealed with HIDREAM_SECRET_KEY) and its short-lived OAuth states: the bot's own database, reached from
here so that no adapter imports the store."""

from __future__ import annotations

import logging
from typing import Protocol

from bot.model.config import Settings
from bot.model.secrets import KEY, MAKE_KEY, Sealer, sealer
from storage.installations import BotInstall as BotInstall
from storage.installations import Installations as Installations
from storage.installations import plain_tokens
from storage.store import Store

log = logging.getLogger(__name__)


class HasStore(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...


def sealer_of(settings: Settings) -> Sealer:
    """The settings' sealer; without HIDREAM_SECRET_KEY a ConfigError that says how to make one, so a
    surface that keeps installations refuses to start rather than keep a token in clear."""
    return sealer(settings.secret_key.get_secret_value(), settings.secret_key_old.get_secret_value())


def installations(engine: HasStore) -> Installations:
    return Installations(engine.store, sealer_of(engine.settings))


async def seal_at_start(store: Store, settings: Settings) -> None:
    """Before any surface reads them: every stored installation token sealed under the current key
    (a previous release's plain rows, rows sealed under HIDREAM_SECRET_KEY_OLD). Without a key nothing
    can be sealed; plain rows left are named in one warning."""
    if not settings.secret_key.get_secret_value():
        plain = await plain_tokens(store)
        if plain:
            log.warning(
                "%d installation token(s) are kept in the database in clear: set %s (make one with: %s)",
                plain,
                KEY,
                MAKE_KEY,
            )
        return
    changed = await Installations(store, sealer_of(settings)).reseal()
    if changed:
        log.info("%d installation(s) sealed under %s", changed, KEY)

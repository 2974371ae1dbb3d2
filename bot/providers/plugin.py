"""What a provider plugin is: the provider half of `bot.plugins`, kept beside the providers so that
each provider module can name it without importing the layers above.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from aiohttp import web
from pydantic import SecretStr, field_validator

from bot.model.config import PluginSettings, Settings, env_names, http_url
from bot.providers.base import HttpProvider, Provider
from bot.transport import Transport

S = TypeVar("S", bound=PluginSettings)


@dataclass(frozen=True)
class ProviderContext:
    """What a provider plugin is given to build its provider."""

    settings: Settings
    http: Transport
    # The bot's own server, e.g. http://127.0.0.1:8080 (a provider that runs inside it lives there).
    server_url: str
    # A folder beside the database where a provider may keep files of its own.
    state_dir: Path


@runtime_checkable
class ProviderPlugin(Protocol[S]):
    name: str
    settings_class: type[S]
    # With HIDREAM_PROVIDER unset, the configured provider with the lowest preference is used.
    preference: int
    # A fallback provider needs no account: used when no other provider is configured.
    fallback: bool

    def configured(self, settings: S) -> bool:
        """Whether the settings this provider needs (its key) are set."""
        ...

    def missing(self, settings: S) -> str | None:
        """The variable still to set before this provider can run, if any."""
        ...

    def build(self, context: ProviderContext, settings: S) -> Provider:
        """The provider, not yet entered: no I/O here."""
        ...

    def add_routes(self, app: web.Application, provider: Provider) -> None:
        """Routes this provider serves on the bot's HTTP server (the sandbox's fake API)."""
        return None

    def warnings(self, settings: S, core: Settings) -> list[str]:
        """What `hidream-bot check` should warn the operator about."""
        return []


class ApiKeySettings(PluginSettings):
    """The settings of a provider reached at a base URL with an API key. Subclasses set their
    `env_prefix` and the provider's default `base_url`."""

    api_key: SecretStr | None = None
    base_url: str

    check_base_url = field_validator("base_url")(http_url)


class KeyedPlugin(ProviderPlugin[S]):
    """The plugin of an HTTP provider that one key enables: its settings class is the provider's own."""

    fallback = False

    def __init__(self, provider_class: type[HttpProvider[S]], *, key: str, preference: int) -> None:
        self.name = provider_class.name
        self.settings_class = provider_class.settings_class
        self.provider_class = provider_class
        self.key = key
        self.preference = preference

    def configured(self, settings: S) -> bool:
        return getattr(settings, self.key) is not None

    def missing(self, settings: S) -> str | None:
        return None if self.configured(settings) else env_names(self.settings_class)[self.key]

    def build(self, context: ProviderContext, settings: S) -> HttpProvider[S]:
        return self.provider_class(context.settings, context.http, options=settings)

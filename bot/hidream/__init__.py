"""The providers, selected by HIDREAM_PROVIDER."""

from __future__ import annotations

import importlib
from typing import Any, cast

import httpx

from bot.config import Settings
from bot.errors import ConfigError
from bot.hidream.base import HttpProvider, Provider

MODULES = {
    "sandbox": "bot.hidream.sandbox",
    "pixazo": "bot.hidream.pixazo",
    "atlascloud": "bot.hidream.atlascloud",
    "fal": "bot.hidream.fal",
    "wavespeed": "bot.hidream.wavespeed",
}


def provider_class(name: str) -> type[HttpProvider]:
    """The provider class whose `name` is `name`, from its own module."""
    if name not in MODULES:
        raise ConfigError(f"HIDREAM_PROVIDER={name} is not one of {', '.join(MODULES)}")
    module = importlib.import_module(MODULES[name])
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, HttpProvider) and getattr(value, "name", "") == name:
            return value
    raise ConfigError(f"no provider class named {name!r} in {MODULES[name]}")


def make_provider(settings: Settings, client: httpx.AsyncClient, *, sandbox_url: str) -> Provider:
    # Each provider takes (settings, client); the sandbox also its own base URL on our server.
    cls: Any = provider_class(settings.provider_name)
    if settings.provider_name == "sandbox":
        return cast(Provider, cls(settings, client, base_url=sandbox_url))
    return cast(Provider, cls(settings, client))

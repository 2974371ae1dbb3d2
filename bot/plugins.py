"""The two kinds of plugin, and where they are found.

A chat surface (each chat platform, the console) and an image provider (each provider, the sandbox)
are each one plugin: an object that names itself, owns a settings class with its own environment
prefix, says whether the environment enables it, builds its part, adds its HTTP routes, and says
what `hidream-bot check` prints about it. The core iterates the plugins and names none of them.

Plugins are found through Python entry points (the groups below), so a new one is a package or
module of its own plus one line in its distribution's metadata: no file of the core changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, runtime_checkable

from aiohttp import web

from bot.model.config import PluginSettings
from bot.model.errors import ConfigError
from bot.model.jobs import Surface
from bot.providers.capabilities import Capabilities
from bot.providers.plugin import ProviderContext, ProviderPlugin
from bot.transport import Transport

if TYPE_CHECKING:
    from bot.jobs.engine import Engine
    from bot.jobs.runner import JobRunner
    from bot.model.config import Settings
    from bot.web.server import HttpServer

__all__ = [
    "Core",
    "DrivingSurface",
    "Plugins",
    "ProviderContext",
    "ProviderPlugin",
    "Registry",
    "SurfaceAdapter",
    "SurfacePlugin",
]

SURFACE_GROUP = "hidream_bot.surfaces"
PROVIDER_GROUP = "hidream_bot.providers"


S = TypeVar("S", bound=PluginSettings)


class SurfaceAdapter(Surface, Protocol):
    """A running chat surface: the engine's `Surface`, entered and left with the bot."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class DrivingSurface(Protocol):
    """A surface that decides when the bot ends (the console: when standard input ends)."""

    async def run_until_done(self) -> int:
        """Serve until done; the process's exit status."""
        ...


class Core(Protocol):
    """What a surface plugin is given to build its part: the running core."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def runner(self) -> JobRunner:
        """The one worker: for a surface that waits on jobs it started (the console)."""
        ...

    @property
    def http(self) -> Transport: ...

    @property
    def server(self) -> HttpServer: ...


@runtime_checkable
class SurfacePlugin(Protocol[S]):
    name: str
    settings_class: type[S]
    # A fallback surface starts only when no other surface is enabled (the console).
    fallback: bool
    # A public surface lets anyone who can make a place on its platform (a server, a workspace) reach
    # the bot there, so `hidream-bot check` asks a paid deployment of one for a ceiling or a person's cap.
    public: bool = False
    # The loggers of this surface's libraries, each with the lowest level it may log at whatever
    # HIDREAM_LOG_LEVEL says: those below it print secrets or what unauthenticated senders wrote.
    loggers: Mapping[str, int] = MappingProxyType({})
    # Patterns of the secrets this platform's tokens and URLs carry, each with what replaces a match;
    # the CLI's log filter masks them in every line, whichever library wrote it.
    redactions: Sequence[tuple[re.Pattern[str], str]] = ()

    def enabled(self, settings: S) -> bool:
        """Whether the environment asks for this surface (its credentials are set)."""
        ...

    def build(self, core: Core, settings: S) -> SurfaceAdapter:
        """The surface, not yet entered: no I/O here."""
        ...

    def add_routes(self, app: web.Application, surface: SurfaceAdapter) -> None:
        """Routes this surface serves on the bot's HTTP server (called before it starts)."""
        return None

    def summary(self, settings: S) -> str:
        """One line for `hidream-bot check`: what would start."""
        ...

    def warnings(self, settings: S) -> list[str]:
        """What `hidream-bot check` should warn the operator about."""
        return []

    def refusal(self, settings: S) -> str | None:
        """Why the bot must not start with these settings, naming them (a surface configured in part,
        which would otherwise be left out without a word); None when nothing is wrong."""
        return None

    def keeps_installs(self, settings: S) -> bool:
        """Whether this surface keeps installation tokens in the database (sealed with HIDREAM_SECRET_KEY)."""
        return False


class Named(Protocol):
    name: str


P = TypeVar("P", bound=Named)


class Registry(Generic[P]):
    """Plugins of one kind by name, in the order they were found."""

    def __init__(self, plugins: list[P]) -> None:
        self._plugins: dict[str, P] = {}
        for plugin in plugins:
            if self._plugins.get(plugin.name, plugin) is not plugin:
                raise ConfigError(f"two plugins are named {plugin.name!r}")
            self._plugins[plugin.name] = plugin

    def get(self, name: str) -> P | None:
        return self._plugins.get(name)

    def names(self) -> list[str]:
        return list(self._plugins)

    def __iter__(self) -> Iterator[P]:
        return iter(list(self._plugins.values()))


@dataclass
class Plugins:
    surfaces: Registry[SurfacePlugin[Any]]
    providers: Registry[ProviderPlugin[Any]]


def discover() -> Plugins:
    """Every plugin installed: the entry points of both groups, each checked against its protocol."""
    return Plugins(
        surfaces=Registry([_load(ep, SurfacePlugin) for ep in entry_points(group=SURFACE_GROUP)]),
        providers=Registry([_load(ep, ProviderPlugin) for ep in entry_points(group=PROVIDER_GROUP)]),
    )


def capabilities_of(plugin: ProviderPlugin[Any]) -> Capabilities | None:
    """What a provider plugin's provider documents (bot/providers/capabilities.py), without building
    it: the plugin's own `capabilities`, or its provider class's; None for a plugin that says nothing."""
    found = getattr(plugin, "capabilities", None)
    if found is None:
        found = getattr(getattr(plugin, "provider_class", None), "capabilities", None)
    return found if isinstance(found, Capabilities) else None


def catalogue(plugins: Plugins | None = None, *, fallbacks: bool = True) -> list[Capabilities]:
    """Every installed provider's capabilities, in order of preference (`fallbacks`: with the
    providers that need no account, the sandbox)."""
    chosen = sorted((plugins or discover()).providers, key=lambda p: p.preference)
    found = [capabilities_of(p) for p in chosen if fallbacks or not p.fallback]
    return [c for c in found if c is not None]


def _load(entry: Any, kind: type[Any]) -> Any:
    plugin = entry.load()
    if not isinstance(plugin, kind):
        raise ConfigError(f"plugin {entry.value!r} ({entry.group}) is not a {kind.__name__}")
    return plugin

"""Wiring: the plugins the environment enables, and every long-lived part entered in one
AsyncExitStack, in the order they depend on each other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.jobs.engine import Engine
from bot.jobs.media import result_address_check, typed_client
from bot.jobs.metrics import Metrics
from bot.jobs.quota_policy import POLICY
from bot.jobs.retention import Retention
from bot.jobs.routing import CircuitBreaker, Router
from bot.jobs.runner import CALLBACK_GRACE, JobRunner
from bot.memory import bound_arenas
from bot.model.config import Settings
from bot.model.errors import ConfigError
from bot.plugins import (
    Plugins,
    ProviderContext,
    ProviderPlugin,
    SurfaceAdapter,
    SurfacePlugin,
    catalogue,
    discover,
)
from bot.providers.aiohttp_transport import provider_client
from bot.providers.base import Provider, Sleep
from bot.transport import Transport
from bot.usecases.installs import seal_at_start, sealer_of
from bot.usecases.region import RegionDesk
from bot.web.admin import add_admin_routes
from bot.web.region import add_region_routes
from bot.web.server import HttpServer
from storage.objects import from_settings as object_store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Bot:
    """The running core, as surface plugins see it: admission and queries (`engine`), and the one
    worker that runs every job (`runner`)."""

    settings: Settings
    http: Transport
    store: Store
    server: HttpServer
    provider: Provider
    engine: Engine
    runner: JobRunner
    retention: Retention
    surfaces: list[SurfaceAdapter] = field(default_factory=list)

    @property
    def server_url(self) -> str:
        return self.server.url


# Builds a surface from the running core (a plugin's build, or a test's own surface).
SurfaceFactory = Callable[[Bot], SurfaceAdapter]


@dataclass(frozen=True)
class Selection:
    """What the settings ask to start: the surfaces and the provider, each with its own settings."""

    surfaces: list[tuple[SurfacePlugin[Any], Any]]
    # The provider new requests prefer (the first of `providers`).
    provider: tuple[ProviderPlugin[Any], Any]
    # What `check` warns about: from every surface plugin (enabled or not) and the chosen provider.
    surface_warnings: list[str] = field(default_factory=list)
    provider_warnings: list[str] = field(default_factory=list)
    # Every provider to run, in order of preference (HIDREAM_PROVIDERS); else just `provider`.
    providers: list[tuple[ProviderPlugin[Any], Any]] = field(default_factory=list)

    @property
    def ordered(self) -> list[tuple[ProviderPlugin[Any], Any]]:
        return self.providers or [self.provider]

    def surface_factories(self) -> list[SurfaceFactory]:
        return [_factory(plugin, section) for plugin, section in self.surfaces]


def _factory(plugin: SurfacePlugin[Any], section: Any) -> SurfaceFactory:
    def build(bot: Bot) -> SurfaceAdapter:
        surface = plugin.build(bot, section)
        plugin.add_routes(bot.server.app, surface)
        return surface

    return build


def select(settings: Settings, plugins: Plugins | None = None) -> Selection:
    """The enabled surfaces (else the fallback ones, the console) and the chosen provider. Every
    plugin's settings are read, so a bad value anywhere is a ConfigError naming its variable."""
    plugins = plugins or discover()
    surfaces = [(p, settings.section(p.settings_class)) for p in plugins.surfaces]
    providers = [(p, settings.section(p.settings_class)) for p in plugins.providers]
    refused = [line for p, s in surfaces if (line := p.refusal(s)) is not None]
    if refused:
        raise ConfigError(refused[0])
    enabled = [(p, s) for p, s in surfaces if not p.fallback and p.enabled(s)]
    if any(p.keeps_installs(s) for p, s in enabled):
        sealer_of(settings)  # without HIDREAM_SECRET_KEY, the ConfigError that says how to make one
    chosen = _several(settings, providers) if settings.provider_order else [_provider(settings, providers)]
    provider = chosen[0][0]
    return Selection(
        surfaces=enabled or [(p, s) for p, s in surfaces if p.fallback],
        provider=chosen[0],
        surface_warnings=[line for p, s in surfaces for line in p.warnings(s)],
        provider_warnings=[line for p, s in chosen for line in p.warnings(s, settings)]
        + _choice_warnings(settings, providers, provider, [p for p, _ in enabled]),
        providers=chosen,
    )


def _several(
    settings: Settings, providers: list[tuple[ProviderPlugin[Any], Any]]
) -> list[tuple[ProviderPlugin[Any], Any]]:
    """HIDREAM_PROVIDERS: each a known provider whose settings are complete, in the order given."""
    known = {p.name: (p, s) for p, s in providers}
    chosen = []
    for name in settings.provider_order:
        if name not in known:
            names = ", ".join(known)
            raise ConfigError(f"invalid setting: HIDREAM_PROVIDERS names {name}, which is not one of {names}")
        plugin, section = known[name]
        missing = plugin.missing(section)
        if missing:
            raise ConfigError(f"HIDREAM_PROVIDERS names {name}, which needs {missing} to be set")
        chosen.append((plugin, section))
    return chosen


def _choice_warnings(
    settings: Settings,
    providers: list[tuple[ProviderPlugin[Any], Any]],
    chosen: ProviderPlugin[Any],
    surfaces: list[SurfacePlugin[Any]],
) -> list[str]:
    """What `check` says about the provider chosen: one of several keys set, or placeholders for real chats."""
    lines = []
    keyed = [
        p for p, s in sorted(providers, key=lambda ps: ps[0].preference) if not p.fallback and p.configured(s)
    ]
    if not settings.provider and not settings.provider_order and len(keyed) > 1:
        names = ", ".join(p.name for p in keyed)
        lines.append(
            f"keys for several providers are set ({names}): {chosen.name} is used; "
            "set HIDREAM_PROVIDER to choose, or HIDREAM_PROVIDERS to use several with failover"
        )
    if chosen.fallback and surfaces:
        names = " and ".join(p.name for p in surfaces)
        lines.append(
            f"{names} will get images from the {chosen.name} provider, which makes placeholders: "
            "set HIDREAM_PROVIDER and its key for real images"
        )
    public = [p.name for p in surfaces if p.public]
    if not chosen.fallback and public and _no_daily_cap(settings):
        # Anyone may make a server and add the bot: each one's members get the daily quota anew.
        lines.append(
            "HIDREAM_DAILY_WORKSPACE_QUOTA and HIDREAM_DAILY_PERSON_QUOTA are empty: anyone may add the bot "
            f"to a place of their own on {' and '.join(public)}, whose members each get their daily images "
            f"again, without a ceiling, billed to the {chosen.name} account; set either (or a ceiling per "
            "server with `hidream-bot quota ceiling`)"
        )
    if settings.public_url and not settings.admin_token.get_secret_value():
        # The server that providers and chat platforms reach from outside also answers /metrics.
        lines.append(
            "HIDREAM_ADMIN_TOKEN is empty while the server has a public URL: GET /metrics (volume and "
            "spend) is open to whoever reaches it; set the token, or keep /metrics off the public proxy"
        )
    return lines


def _no_daily_cap(settings: Settings) -> bool:
    """Nothing bounds a day's images but each tenant's limits: no ceiling, no person's cap."""
    return settings.daily_workspace_quota is None and settings.daily_person_quota is None


def _provider(
    settings: Settings, providers: list[tuple[ProviderPlugin[Any], Any]]
) -> tuple[ProviderPlugin[Any], Any]:
    if settings.provider:
        for plugin, section in providers:
            if plugin.name == settings.provider:
                missing = plugin.missing(section)
                if missing:
                    raise ConfigError(f"HIDREAM_PROVIDER={plugin.name} needs {missing} to be set")
                return plugin, section
        names = ", ".join(p.name for p, _ in providers)
        raise ConfigError(f"invalid setting: HIDREAM_PROVIDER={settings.provider} is not one of {names}")
    configured = sorted(
        ((p, s) for p, s in providers if not p.fallback and p.configured(s)), key=lambda ps: ps[0].preference
    )
    fallback = [(p, s) for p, s in providers if p.fallback]
    if not configured and not fallback:
        raise ConfigError("no provider is configured: set HIDREAM_PROVIDER and its key")
    return (configured or fallback)[0]


def build_provider(settings: Settings, selection: Selection, http: Transport, server_url: str) -> Provider:
    return build_providers(settings, selection, http, server_url)[0]


def build_providers(
    settings: Settings, selection: Selection, http: Transport, server_url: str
) -> list[Provider]:
    """Every selected provider, in order of preference, not yet entered."""
    built = []
    for plugin, section in selection.ordered:
        state_dir = settings.db_path.parent / f"{settings.db_path.name}.{plugin.name}"
        built.append(plugin.build(ProviderContext(settings, http, server_url, state_dir), section))
    return built


def open_store(settings: Settings) -> Store:
    """The store the settings name (HIDREAM_DATABASE_URL: PostgreSQL; empty: SQLite at
    HIDREAM_DB_PATH), with the quota defaults they set and the media store HIDREAM_MEDIA_URL names
    (enter it to open it)."""
    media = object_store(settings)
    if media is not None:
        log.info("media: %s", settings.media_label())
    url = settings.postgres_url
    if url is not None:
        log.info("store: PostgreSQL at %s", settings.database_label())
        return PostgresStore(
            url,
            default_limit=settings.daily_image_quota,
            default_ceiling=settings.daily_workspace_quota,
            admin_max=settings.admin_max_limit,
            person_quota=settings.daily_person_quota,
            policy=POLICY,
            media=media,
        )
    return SqliteStore(
        settings.db_path,
        default_limit=settings.daily_image_quota,
        default_ceiling=settings.daily_workspace_quota,
        admin_max=settings.admin_max_limit,
        person_quota=settings.daily_person_quota,
        policy=POLICY,
        media=media,
    )


def build_core(
    settings: Settings,
    store: Store,
    providers: list[Provider],
    http: Transport,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    callback_grace: float = CALLBACK_GRACE,
    breaker: CircuitBreaker | None = None,
    results_http: Transport | None = None,
    **admission: Any,
) -> tuple[JobRunner, Engine]:
    """The worker and admission, not yet entered. They share the providers' router (one set of
    circuit breakers) and the counters of /metrics; admission hands new jobs to the worker.
    `admission`: the engine's own options (resolver, typed_http, typed_fetch_seconds)."""
    by_name = {p.name: p for p in providers}
    # Refusals name the real providers that offer a knob, configured here or not (never the sandbox).
    known = catalogue(fallbacks=False)
    router = Router(
        by_name, list(by_name), settings.model, lambda: not settings.public_url, breaker, catalogue=known
    )
    metrics = Metrics(store)
    runner = JobRunner(
        settings,
        store,
        by_name,
        http,
        clock=clock,
        sleep=sleep,
        callback_grace=callback_grace,
        results_http=results_http,
        router=router,
        metrics=metrics,
    )
    engine = Engine(
        settings,
        store,
        by_name,
        http,
        router=router,
        worker=runner,
        metrics=metrics,
        clock=clock,
        **admission,
    )
    return runner, engine


def result_client(settings: Settings, providers: list[Provider], own_url: str) -> Transport:
    """The transport result files are downloaded with: public addresses only, redirects included,
    except the hosts HIDREAM_TRUSTED_RESULT_HOSTS names, and the bot's own server when the sandbox
    (which serves its pictures there) is one of the providers."""
    trusted = settings.trusted_result_hosts
    if any(p.name == "sandbox" for p in providers):
        trusted += "," + urlsplit(own_url).netloc
    return provider_client(address_check=result_address_check(trusted))


def bind_server(settings: Settings, *, may_move: bool) -> HttpServer:
    """The server, bound to its port. `may_move`: when the port is taken, take a free one and say so
    (a console run on its default port: a second console, or anything else on 8080, must not stop it).
    A port the operator chose is never moved: a taken one stops the bot with a line naming the setting."""
    proxies = settings.trusted_proxy_networks
    server = HttpServer(settings.http_host, settings.http_port, trusted_proxies=proxies)
    try:
        server.bind()
    except ConfigError:
        if not may_move:
            raise
        server = HttpServer(settings.http_host, 0, trusted_proxies=proxies)
        server.bind()
        log.warning(
            "port %s is taken: the bot's HTTP server listens on %s instead (HIDREAM_HTTP_PORT chooses one)",
            settings.http_port,
            server.url,
        )
    return server


async def start_bot(
    settings: Settings,
    stack: AsyncExitStack,
    surfaces: list[SurfaceFactory] | None = None,
    *,
    selection: Selection | None = None,
    loopback_public_url: bool = False,
    **core_options: Any,
) -> Bot:
    """Start everything; `stack` closes it all in reverse order. `surfaces`: the surfaces to start,
    by default those the settings enable. `selection`: what `select` chose, if already known.
    `core_options`: `build_core`'s (clocks, retries, the typed-URL client) for tests and benchmarks.

    `loopback_public_url`: use the server's own loopback address as HIDREAM_PUBLIC_URL, so callbacks
    work on one machine (tests, benchmarks)."""
    bound_arenas()
    selection = selection or select(settings)
    http = await stack.enter_async_context(provider_client())
    typed_http = await stack.enter_async_context(typed_client())
    store = await stack.enter_async_context(open_store(settings))
    # Before anything else uses the store: entering may convert the file once (a VACUUM).
    retention = await stack.enter_async_context(
        Retention(store, settings.media_retention_days, subject_days=settings.subject_retention_days)
    )
    await seal_at_start(store, settings)
    console_only = surfaces is None and all(plugin.fallback for plugin, _ in selection.surfaces)
    server = bind_server(settings, may_move=console_only and not settings.chosen("http_port"))
    if loopback_public_url:
        settings.public_url = server.url
    providers = build_providers(settings, selection, http, server.url)
    results_http = await stack.enter_async_context(result_client(settings, providers, server.url))
    for (plugin, _), built in zip(selection.ordered, providers, strict=True):
        plugin.add_routes(server.app, built)
    provider = providers[0]
    add_admin_routes(server, settings)
    core_options.setdefault("typed_http", typed_http)
    core_options.setdefault("results_http", results_http)
    runner, engine = build_core(settings, store, providers, http, **core_options)
    engine.site_url = settings.public_url or server.url
    add_region_routes(server, RegionDesk(engine, runner.surfaces), redirects=settings.media_redirect)
    bot = Bot(settings, http, store, server, provider, engine, runner, retention)
    factories = selection.surface_factories() if surfaces is None else surfaces
    adapters = [factory(bot) for factory in factories]
    await stack.enter_async_context(server)
    for built in providers:
        await stack.enter_async_context(built)
    await stack.enter_async_context(runner)
    for adapter in adapters:
        runner.add_surface(adapter)
        await stack.enter_async_context(adapter)
        bot.surfaces.append(adapter)
    info = {
        "provider": provider.name,
        "providers": list(engine.providers),
        "surfaces": [s.name for s in bot.surfaces],
    }
    server.ready(runner, info, engine=engine)
    await runner.resume()
    return bot

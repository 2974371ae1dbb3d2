"""`hidream-bot run | check | quota ... | db copy | report | audit export`: the only place that exits
the process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from bot import accounts, logs, migrate_db, operator, words
from bot.app import Selection, build_providers, select, start_bot
from bot.jobs.credentials import check_line as credentials_line
from bot.logs import REDACTED
from bot.model.config import Settings, load_settings
from bot.model.errors import ConfigError
from bot.model.secrets import KEY, MAKE_KEY, OLD_KEY
from bot.plugins import DrivingSurface, catalogue, discover
from bot.providers.aiohttp_transport import provider_client
from bot.providers.capabilities import table as capability_table
from storage.postgres import connection_problem
from storage.sqlite import owner_only

log = logging.getLogger("hidream-bot")

# The core's loggers that print secrets below these levels, held there whatever HIDREAM_LOG_LEVEL says:
# httpx and httpcore log URLs (per-job callback tokens). Each surface plugin names its own libraries'
# (`SurfacePlugin.loggers`), held the same way.
QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
}
# The name under which the runner keeps the key that signs /media/ links (Store.secret).
MEDIA_LINK_SECRET = "media-links"

# Secrets inside text that the core itself writes: the bot's own callback URLs (/webhooks/<token>) and
# credentials in an Authorization header. Each surface plugin names the patterns of its own platform's
# tokens and URLs (`SurfacePlugin.redactions`), applied before these.
_UNSAFE: list[tuple[re.Pattern[str], str]] = [
    # (a numbered segment is an id of a platform's, whose own pattern masks the token after it)
    (re.compile(r"(/webhooks/)(?!\d+/)[\w.~%-]+"), rf"\1{REDACTED}"),
    (re.compile(r"(Authorization['\"]?\s*[:=]\s*['\"]?\w+ )[^\s'\"]+", re.IGNORECASE), rf"\1{REDACTED}"),
]


class Redactor(logging.Filter):
    """On the log handler the CLI installs: masks, in each record's message and traceback, the values of
    the secret settings, the media-link secret, the tokens in callback URLs and whatever the surfaces'
    patterns match. A second line of defence behind the quiet loggers."""

    def __init__(
        self, secrets: Iterable[str] = (), patterns: Iterable[tuple[re.Pattern[str], str]] = ()
    ) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._patterns = [*patterns, *_UNSAFE]
        self.add(*secrets)

    def add(self, *values: str) -> None:
        # A very short value would mask ordinary words; real tokens and keys are long.
        self._secrets.update(v for v in values if len(v) >= 8)

    def redact(self, text: str) -> str:
        for value in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        for pattern, replacement in self._patterns:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            # Formatted here, so that no handler formats the original again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def secret_values(settings: Settings) -> list[str]:
    """The values of every secret setting (tokens, keys, signing secrets) of the core and each plugin."""
    plugins = discover()
    sections: list[BaseSettings] = [settings]
    sections += [settings.section(p.settings_class) for p in [*plugins.surfaces, *plugins.providers]]
    values = (getattr(s, name) for s in sections for name in type(s).model_fields)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]


def quiet_loggers() -> dict[str, int]:
    """The core's quiet loggers and every installed surface plugin's (the stricter floor where two
    name the same logger)."""
    floors = dict(QUIET_LOGGERS)
    for plugin in discover().surfaces:
        for name, floor in plugin.loggers.items():
            floors[name] = max(floor, floors.get(name, logging.NOTSET))
    return floors


def _setup_logging(
    level: str,
    secrets: Iterable[str] = (),
    log_format: str = "text",
    quiet: Mapping[str, int] | None = None,
) -> Redactor:
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr)
    for name, floor in (quiet_loggers() if quiet is None else quiet).items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    redactor = Redactor(secrets, [pattern for plugin in discover().surfaces for pattern in plugin.redactions])
    # Only on the handler made here, i.e. when the bot set logging up itself. The filter rewrites each
    # record in place, so a host that set logging up already (the bot embedded, or under pytest) keeps
    # its records as they are, and its handlers are left alone.
    # The filter runs before the formatter, so JSON lines are made of what it has masked already.
    for handler in root.handlers:
        if handler not in before:
            handler.addFilter(redactor)
            handler.setFormatter(logs.formatter(log_format))
    return redactor


async def run(settings: Settings, selection: Selection, redactor: Redactor | None = None) -> int:
    async with AsyncExitStack() as stack:
        # What start-up creates beside the database (a provider's state folder) is the owner's only.
        with owner_only():
            bot = await start_bot(settings, stack, selection=selection)
        if redactor is not None:
            redactor.add((await bot.store.secret(MEDIA_LINK_SECRET)).hex())
        mode = f"callbacks at {settings.public_url}/webhooks/" if settings.public_url else "polling"
        log.info(
            "ready: provider %s (%s), surfaces %s",
            ",".join(bot.engine.providers),
            mode,
            [s.name for s in bot.surfaces],
        )
        driving = [s for s in bot.surfaces if isinstance(s, DrivingSurface)]
        if driving:
            return await driving[0].run_until_done()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down; unfinished jobs resume on the next start")
    return 0


def check(settings: Settings, selection: Selection) -> int:
    errors: list[str] = []
    url = settings.postgres_url
    if url is None:
        print(f"database:  {settings.database_label()}")
        db_problem = _db_path_problem(settings.db_path)
        if db_problem:
            errors.append(f"HIDREAM_DB_PATH: {db_problem}")
    else:
        # As `run` would: connect (and sign in), within a few seconds.
        unreachable = asyncio.run(connection_problem(url, words.DB_CONNECT_SECONDS))
        label = settings.database_label()
        print(f"database:  {label if unreachable else words.db_reached(label)}")
        if unreachable:
            errors.append(f"HIDREAM_DATABASE_URL: {words.db_unreachable(label, unreachable)}")
        db_problem = None
    print(f"media:     {settings.media_label()}")
    if settings.media_redirect and not settings.media_url:
        print(
            "warning:   HIDREAM_MEDIA_REDIRECT is set but HIDREAM_MEDIA_URL names no object store: links stream"
        )
    print(f"http:      listening on {settings.http_host}:{settings.http_port}")
    if settings.public_url:
        print(f"callbacks: {settings.public_url}/webhooks/<per-job token> (providers call back)")
    else:
        print("callbacks: off (HIDREAM_PUBLIC_URL is empty): jobs are polled")
    for line in selection.surface_warnings:
        print(f"warning:   {line}")
    print("surfaces:  " + "; ".join(plugin.summary(section) for plugin, section in selection.surfaces))
    if db_problem:
        # A provider may make its folder beside the database when built: not while that is wrong.
        print(f"provider:  {', '.join(plugin.name for plugin, _ in selection.ordered)}")
    else:
        errors += _check_provider(settings, selection)
    for line in selection.provider_warnings:
        print(f"warning:   {line}")
    print(f"quota:     {settings.daily_image_quota} images per user per UTC day unless set otherwise")
    print(_secrets_line(settings))
    try:
        print(credentials_line(settings))
    except ConfigError as exc:
        errors.append(str(exc))
    for error in errors:
        print(f"hidream-bot: {error}", file=sys.stderr)
    return 2 if errors else 0


def _secrets_line(settings: Settings) -> str:
    """What seals the secrets the bot keeps in its database, or how to make the key it lacks."""
    if not settings.secret_key.get_secret_value():
        return (
            f"sealing:   {KEY} is not set: a surface installed by OAuth (whose installation tokens the "
            f"bot keeps) will not start; make a key with: {MAKE_KEY}"
        )
    if settings.secret_key_old.get_secret_value():
        return (
            f"sealing:   installation tokens sealed with {KEY}; those under {OLD_KEY} are sealed again "
            f"at the next start, after which {OLD_KEY} may be removed"
        )
    return f"sealing:   installation tokens sealed with {KEY}"


def _check_provider(settings: Settings, selection: Selection) -> list[str]:
    """Print the providers that would run, in order of preference; the errors in their settings."""
    server_url = f"http://{settings.http_host}:{settings.http_port}"
    try:
        with owner_only():  # as in run: a folder it makes beside the database is the owner's only
            providers = build_providers(settings, selection, provider_client(), server_url)
    except OSError as exc:  # its folder beside the database could not be made
        folder = settings.db_path.resolve().parent
        return [f"HIDREAM_DB_PATH: {words.db_not_writable(folder, exc.strerror)}"]
    if len(providers) > 1:
        print(
            f"providers: {', '.join(p.name for p in providers)} (in this order; the next takes over on failure)"
        )
    errors = []
    for rank, provider in enumerate(providers):
        tiers = provider.tiers()
        print(f"provider:  {provider.name}, default model {settings.model}, tiers {', '.join(tiers)}")
        for line in provider.describe():
            print(f"           {line}")
        if settings.model in tiers:
            continue
        problem = (
            f"HIDREAM_MODEL={settings.model}: {provider.name} does not offer it (only {', '.join(tiers)})"
        )
        if rank == 0:
            errors.append(problem)
        else:  # requests that default to it go to a provider that offers it
            print(f"warning:   {problem}")
    return errors


def _db_path_problem(path: Path) -> str | None:
    """Why SQLite could not keep its database at `path`: it writes the file and, beside it, -wal and -shm
    (and a provider may keep a folder there). Beyond what the modes say, a file is made there and
    removed, as only trying tells (a read-only or special file system, a full disk, root on /proc)."""
    folder = path.resolve().parent
    if path.is_dir():
        return words.db_is_a_folder(path)
    if not folder.exists():
        return words.db_folder_missing(folder)
    if not folder.is_dir():
        return words.db_folder_not_a_folder(folder)
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        return words.db_not_writable(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".hidream-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as exc:
        return words.db_not_writable(folder, exc.strerror)
    return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hidream-bot", description="HiDream-O1 images in team chat and a local console"
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the bot")
    sub.add_parser("check", help="validate the configuration and print what would start")
    sub.add_parser("providers", help="each provider's capability table: modes, models, sizes, knobs, price")
    operator.add_parser(sub)
    migrate_db.add_parser(sub)
    accounts.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "providers":
        # The data every request is checked against; no setting is needed to read it.
        print(capability_table(catalogue()))
        return 0
    try:
        settings = load_settings()
        selection = select(settings)
    except ConfigError as exc:
        return _refuse(exc)
    redactor = _setup_logging(_log_level(settings, selection), secret_values(settings), settings.log_format)
    try:
        if args.command == "check":
            return check(settings, selection)
        if args.command == "quota":
            wrong = operator.problem(args)
            if wrong is not None:
                print(f"hidream-bot quota {args.action}: {wrong}", file=sys.stderr)
                return 2
            return asyncio.run(operator.run(settings, args))
        if args.command in ("report", "audit"):
            wrong = accounts.problem(args)
            if wrong is not None:
                print(f"hidream-bot {args.command}: {wrong}", file=sys.stderr)
                return 2
            return asyncio.run(
                (accounts.report if args.command == "report" else accounts.export)(settings, args)
            )
        if args.command == "db":
            redactor.add(*migrate_db.secrets_in(args))
            return asyncio.run(migrate_db.run(settings, args))
        return asyncio.run(run(settings, selection, redactor))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        return _refuse(exc)


def _log_level(settings: Settings, selection: Selection) -> str:
    """HIDREAM_LOG_LEVEL when given; else INFO, except in a console-only run: there the log shares the
    terminal with the chat, so only warnings (a moved port, a provider's trouble) are shown."""
    console_only = all(plugin.fallback for plugin, _ in selection.surfaces)
    if console_only and not settings.chosen("log_level"):
        return "WARNING"
    return settings.log_level


def _refuse(exc: ConfigError) -> int:
    """One line naming the setting and the cause; the whole chain only at DEBUG."""
    log.debug("the setting's error in full", exc_info=exc)
    print("hidream-bot: " + " ".join(str(exc).split()), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

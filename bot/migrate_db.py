"""`hidream-bot db copy [--to postgresql://...|s3://...]`: move a one-machine install's SQLite database
(HIDREAM_DB_PATH) into an empty PostgreSQL database (by default HIDREAM_DATABASE_URL), so that
several replicas can share it; its images go where that store keeps them (the PostgreSQL rows, or the
object store HIDREAM_MEDIA_URL names). `--to s3://bucket/prefix` instead copies the SQLite store's
image files into that object store (at HIDREAM_S3_ENDPOINT, with the AWS_* credentials), the
database staying where it is. The copying itself is storage/copy.py's.

A refusal or failure is one line and exit status 2; the URL is only ever printed as
`postgresql://host:port/dbname` (it may hold a password).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from bot.model.config import Settings, postgres_label
from bot.model.errors import ConfigError
from storage.copy import Copied, CopyFailed, TargetNotEmpty, copy_files_to_objects, copy_sqlite_to_postgres
from storage.objects import ObjectStoreError, parse_media_url
from storage.objects import from_settings as object_store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

PREFIX = "hidream-bot db copy"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("db", help="operator commands on the bot's database")
    ds = d.add_subparsers(dest="action", required=True)
    cp = ds.add_parser(
        "copy", help="copy the SQLite database (HIDREAM_DB_PATH) into an empty PostgreSQL database"
    )
    cp.add_argument(
        "--to",
        metavar="postgresql://...|s3://...",
        help="the PostgreSQL database to copy into (default: HIDREAM_DATABASE_URL), or an object store "
        "to copy the images into",
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.to is not None and args.to.startswith("s3://"):
        return await _to_objects(settings, args.to)
    url = args.to if args.to is not None else settings.postgres_url
    wrong = _problem(settings, url)
    if wrong is not None:
        return _fail(wrong)
    assert url is not None  # _problem refuses a missing URL
    label = postgres_label(url)
    try:
        copied = await _copy(settings, url)
    except (TargetNotEmpty, ConfigError) as exc:
        return _fail(str(exc))
    except CopyFailed as exc:
        return _fail(f"{exc}; nothing was written to {label}")
    print(f"copied {settings.db_path} into {label}:")
    if settings.media_url:
        print(f"images kept in {settings.media_label()}")
    for table, rows in copied.rows.items():
        print(f"  {table:<20} {rows} row(s)")
    print(f"images: {copied.images}, {copied.image_bytes / 1_000_000:.2f} MB")
    if copied.missing_images:
        print(f"skipped: {copied.missing_images} image(s) listed in the media table without their bytes")
    return 0


def secrets_in(args: argparse.Namespace) -> list[str]:
    """What of the arguments the log must never show: the --to URL and its password."""
    if not args.to:
        return []
    try:
        password = urlsplit(args.to).password
    except ValueError:
        password = None
    return [args.to, *([password] if password else [])]


def _problem(settings: Settings, url: str | None) -> str | None:
    """What is wrong before anything is opened; never quotes the URL (it may hold a password)."""
    if not url:
        return "give --to postgresql://user:password@host:port/dbname, or set HIDREAM_DATABASE_URL"
    if not url.startswith(("postgresql://", "postgres://")):
        return "--to must be a postgresql:// URL"
    try:
        postgres_label(url)
    except ValueError:
        return "--to is not a well-formed postgresql:// URL"
    if not settings.db_path.is_file():
        return f"HIDREAM_DB_PATH: there is no SQLite database at {settings.db_path.resolve()}"
    return None


async def _copy(settings: Settings, url: str) -> Copied:
    limit, ceiling = settings.daily_image_quota, settings.daily_workspace_quota
    # Each store brings its database to the current schema as it opens.
    async with AsyncExitStack() as stack:
        # The source where the bot keeps its images now; the target with the same object store, if any.
        source = await stack.enter_async_context(
            SqliteStore(
                settings.db_path,
                default_limit=limit,
                default_ceiling=ceiling,
                media=object_store(settings),
                copying=True,
            )
        )
        try:
            target = await stack.enter_async_context(
                PostgresStore(
                    url,
                    default_limit=limit,
                    default_ceiling=ceiling,
                    pool_size=2,
                    media=object_store(settings),
                )
            )
        except ValueError as exc:  # asyncpg's parsing of a malformed URL; its text may quote the URL
            raise ConfigError(f"cannot open {postgres_label(url)}: the URL is not valid") from exc
        except ConfigError as exc:
            # Its message names HIDREAM_DATABASE_URL, which --to may not be; the cause names no URL.
            raise ConfigError(f"cannot open {postgres_label(url)}: {exc.__cause__}") from exc
        return await copy_sqlite_to_postgres(source, target)


async def _to_objects(settings: Settings, url: str) -> int:
    """Copy the SQLite store's image files into the object store `url` names."""
    try:
        parse_media_url(url)
    except ValueError as exc:
        return _fail(f"--to {exc}")
    target = object_store(settings, url=url)
    assert target is not None
    if not settings.db_path.is_file():
        return _fail(f"HIDREAM_DB_PATH: there is no SQLite database at {settings.db_path.resolve()}")
    limit, ceiling = settings.daily_image_quota, settings.daily_workspace_quota
    try:
        await target.open()
        async with SqliteStore(settings.db_path, default_limit=limit, default_ceiling=ceiling) as source:
            copied = await copy_files_to_objects(source, target)
    except ConfigError as exc:
        return _fail(str(exc))
    except ObjectStoreError as exc:
        return _fail(f"{exc}; run it again once the store answers (objects written so far are rewritten)")
    print(f"moved the images of {settings.db_path} into {target.label()}:")
    print(f"images: {copied.images}, {copied.image_bytes / 1_000_000:.2f} MB")
    if copied.missing_images:
        print(f"skipped: {copied.missing_images} image(s) listed in the media table without their file")
    print(f"now set HIDREAM_MEDIA_URL={url} for the bot to read them there")
    return 0


def _fail(message: str) -> int:
    print(f"{PREFIX}: {message}", file=sys.stderr)
    return 2

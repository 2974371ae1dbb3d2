"""`hidream-bot run | check | quota ...`: the only place that exits the process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack

import httpx

from bot import operator
from bot.app import Selection, build_provider, select, start_bot
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.plugins import DrivingSurface

log = logging.getLogger("hidream-bot")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every URL at INFO; callback URLs carry per-job tokens.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "discord.gateway", "discord.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def run(settings: Settings, selection: Selection) -> int:
    async with AsyncExitStack() as stack:
        bot = await start_bot(settings, stack, selection=selection)
        mode = f"callbacks at {settings.public_url}/webhooks/" if settings.public_url else "polling"
        log.info(
            "ready: provider %s (%s), surfaces %s", bot.provider.name, mode, [s.name for s in bot.surfaces]
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
    print(f"database:  {settings.db_path.resolve()}")
    print(f"http:      listening on {settings.http_host}:{settings.http_port}")
    if settings.public_url:
        print(f"callbacks: {settings.public_url}/webhooks/<per-job token> (providers call back)")
    else:
        print("callbacks: off (HIDREAM_PUBLIC_URL is empty): jobs are polled")
    for line in selection.surface_warnings:
        print(f"warning:   {line}")
    print("surfaces:  " + "; ".join(plugin.summary(section) for plugin, section in selection.surfaces))
    server_url = f"http://{settings.http_host}:{settings.http_port}"
    provider = build_provider(settings, selection, httpx.AsyncClient(), server_url)
    print(f"provider:  {provider.name}, default model {settings.model}, tiers {', '.join(provider.tiers())}")
    for line in provider.describe():
        print(f"           {line}")
    for line in selection.provider_warnings:
        print(f"warning:   {line}")
    print(f"quota:     {settings.daily_image_quota} images per user per UTC day unless set otherwise")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hidream-bot", description="HiDream-O1 images in Slack, Discord and a console"
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the bot")
    sub.add_parser("check", help="validate the configuration and print what would start")
    operator.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        selection = select(settings)
    except ConfigError as exc:
        print(f"hidream-bot: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    if args.command == "check":
        return check(settings, selection)
    if args.command == "quota":
        wrong = operator.problem(args)
        if wrong is not None:
            print(f"hidream-bot quota {args.action}: {wrong}", file=sys.stderr)
            return 2
        return asyncio.run(operator.run(settings, args))
    try:
        return asyncio.run(run(settings, selection))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"hidream-bot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

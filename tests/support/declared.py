"""What the shipped files and the code declare to the outside, read from the things themselves: the
Slack app manifest (a small reader for its YAML), the listeners a built bolt App holds, the Discord
command tree as the adapter registers it, the request flags and the buttons under a result. Used by
tests/test_slack_manifest.py and tests/test_readme.py, which compare these with each other and with
the README, so that nothing here is a hard-coded copy of the lists it checks."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.listener_matcher.async_builtins import AsyncBuiltinListenerMatcher

from adapters.discord import DiscordAdapter
from adapters.slack import blocks as slack_blocks
from bot.model import requests
from bot.usecases import actions

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFEST_PATH = ROOT / "slack-app-manifest.yml"

# --- the manifest ------------------------------------------------------------------------------


def _uncommented(text: str) -> list[str]:
    """The manifest's lines without comments (a `#` at a line's start or after a space: the colour
    "#24203a" is quoted, so it stays) and without blank lines."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.strip():
            lines.append(line)
    return lines


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _section(lines: list[str], path: str) -> list[str]:
    """The lines under a key path such as `oauth_config.scopes.bot` (each key looked for below the
    previous one, at any deeper indentation)."""
    body = lines
    for key in path.split("."):
        for i, line in enumerate(body):
            if re.fullmatch(rf"\s*(?:- )?{re.escape(key)}:.*", line):
                depth = _indent(line)
                rest = body[i + 1 :]
                end = next((j for j, x in enumerate(rest) if _indent(x) <= depth), len(rest))
                body = rest[:end]
                break
        else:
            raise AssertionError(f"the manifest has no `{path}` (missing `{key}`)")
    return body


def _items(lines: list[str]) -> list[str]:
    """The scalar items of a YAML list: `- value` at the list's own indentation."""
    if not lines:
        return []
    depth = min(_indent(x) for x in lines)
    return [
        x.strip()[2:].strip().strip('"') for x in lines if _indent(x) == depth and x.strip().startswith("- ")
    ]


def _values(lines: list[str], key: str) -> list[str]:
    return [
        m.group(1).strip().strip('"') for x in lines if (m := re.fullmatch(rf"\s*(?:- )?{key}:\s*(.+)", x))
    ]


@dataclass(frozen=True)
class Manifest:
    bot_scopes: list[str]
    bot_events: list[str]
    commands: list[str]
    shortcuts: list[str]  # callback ids
    shortcut_names: list[str]

    @classmethod
    def read(cls, path: Path = MANIFEST_PATH) -> Manifest:
        lines = _uncommented(path.read_text())
        shortcuts = _section(lines, "features.shortcuts")
        return cls(
            bot_scopes=_items(_section(lines, "oauth_config.scopes.bot")),
            bot_events=_items(_section(lines, "settings.event_subscriptions.bot_events")),
            commands=_values(_section(lines, "features.slash_commands"), "command"),
            shortcuts=_values(shortcuts, "callback_id"),
            shortcut_names=_values(shortcuts, "name"),
        )


# --- the listeners a bolt App holds ------------------------------------------------------------


class _Probe(str):
    """A payload field that records what it is compared with: bolt's matchers compare the incoming
    event type, command or callback id with the name each listener was registered under."""

    seen: list[object]

    def __new__(cls) -> _Probe:
        probe = super().__new__(cls, "\x00probe")
        probe.seen = []
        return probe

    def __eq__(self, other: object) -> bool:
        self.seen.append(other)
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


async def _asked(app: AsyncApp, body_of: Callable[[_Probe], dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for listener in app._async_listeners:  # bolt keeps its listeners here, in registration order
        for matcher in listener.matchers:
            # Each of ours is one of bolt's built-in matchers (app.event, app.command...), whose
            # function reads the body alone (bolt's own kwargs building compares the body with
            # names of its own, so it is left out).
            assert isinstance(matcher, AsyncBuiltinListenerMatcher), matcher
            probe = _Probe()
            matched = matcher.func(body=body_of(probe))
            if inspect.isawaitable(matched):
                await matched
            names |= {x for x in probe.seen if isinstance(x, str)}
    return names


@dataclass(frozen=True)
class Listeners:
    events: set[str]
    commands: set[str]
    shortcuts: set[str]

    @classmethod
    async def of(cls, app: AsyncApp) -> Listeners:
        return cls(
            events=await _asked(app, lambda p: {"type": "event_callback", "event": {"type": p}}),
            commands=await _asked(app, lambda p: {"command": p, "text": ""}),
            shortcuts=await _asked(app, lambda p: {"type": "message_action", "callback_id": p}),
        )


# --- Discord's command tree --------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordCommand:
    name: str
    subcommands: tuple[str, ...]
    options: tuple[str, ...]


def discord_commands(adapter: DiscordAdapter) -> dict[str, DiscordCommand]:
    """The slash commands (with their subcommands and options) and the message menu, as the adapter
    registered them in its tree: what Discord is sent at sync."""
    tree: app_commands.CommandTree[discord.Client] = adapter.tree
    found: dict[str, DiscordCommand] = {}
    for command in tree.get_commands(type=discord.AppCommandType.chat_input):
        if isinstance(command, app_commands.Group):
            subs = tuple(c.name for c in command.commands)
            found[command.name] = DiscordCommand(command.name, subs, ())
        else:
            assert isinstance(command, app_commands.Command)
            found[command.name] = DiscordCommand(command.name, (), tuple(p.name for p in command.parameters))
    return found


def discord_menus(adapter: DiscordAdapter) -> set[str]:
    return {c.name for c in adapter.tree.get_commands(type=discord.AppCommandType.message)}


# --- the request flags and the buttons ---------------------------------------------------------


def flags() -> set[str]:
    """Every flag the shared parser knows, as people type it (`--ar`)."""
    return {f"--{name}" for name in requests.KNOWN_FLAGS}


def flag_aliases() -> dict[str, str]:
    """Other spellings the parser takes, each to its flag (`--guidance` -> `--cfg`)."""
    return {f"--{alias}": f"--{name}" for alias, name in requests._FLAG_ALIASES.items()}


def all_actions() -> list[actions.Action]:
    """Every action a result may offer: one per `Kind`, as bot/usecases/actions.py declares them."""
    found = [v for v in vars(actions).values() if isinstance(v, actions.Action)]
    kinds = [a.kind for a in found]
    assert sorted(k.value for k in kinds) == sorted(k.value for k in actions.Kind), (
        "each Kind has exactly one Action in bot/usecases/actions.py"
    )
    return found


def slack_buttons() -> set[str]:
    """The labels of the actions Slack shows as buttons (the rest are said in the thread)."""
    return {a.label for a in all_actions() if a.kind in slack_blocks.ACTION_IDS}

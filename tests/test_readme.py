"""The README says what the code does. Its lists of flags, buttons, Discord commands, Slack scopes,
events and commands (each under a `<!-- checked by tests/test_readme.py: NAME -->` line) are compared
with what the code declares: the request parser's flags, the actions under a result and how each
surface renders them, the Discord command tree as the adapter builds it, the Slack manifest, the
listeners of the adapter's bolt App, and the slash-command parser. A flag, button, command, scope or
event added on one side and not the other fails here. The README also stays short: under 250 lines,
no paragraph over 80 words, and its `uv run` lines never install the test tools."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter, DiscordSettings
from adapters.discord.views import result_view
from adapters.slack import SlackSettings
from adapters.slack import blocks as slack_blocks
from adapters.slack import translate as slack_text
from adapters.slack.subjects import parse_subject_text
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.support.declared import (
    ROOT,
    Listeners,
    Manifest,
    all_actions,
    discord_commands,
    discord_menus,
    flag_aliases,
    flags,
    slack_buttons,
)
from tests.support.harness import BotHarness
from tests.support.jobs import make_job
from tests.support.slack_support import running

README = (ROOT / "README.md").read_text()
MAX_LINES = 250
MAX_WORDS = 80


def checked_list(name: str) -> list[str]:
    """The items of the list under the README's `checked ... NAME` marker (up to the next blank line)."""
    marker = f"<!-- checked by tests/test_readme.py: {name} -->"
    assert README.count(marker) == 1, f"the README has no single `{marker}`"
    after = README.split(marker, 1)[1].lstrip("\n").split("\n\n", 1)[0]
    items = [line[2:] for line in after.splitlines() if line.startswith("- ")]
    assert items and len(items) == len(after.splitlines()), f"the {name} list is one `- ` item a line"
    return items


def leading_names(item: str) -> list[str]:
    """The backticked names an item starts with, before its colon: "`a`, `b`: why" -> [a, b]."""
    m = re.match(r"((?:`[^`]+`(?:, )?)+):", item)
    assert m, f"`{item}` does not start with backticked names and a colon"
    return re.findall(r"`([^`]+)`", m.group(1))


def bold_name(item: str) -> str:
    m = re.match(r"\*\*(.+?)\*\*", item)
    assert m, f"`{item}` does not start with a bold name"
    return m.group(1)


# --- flags ---------------------------------------------------------------------------------------


def test_the_flag_list_is_the_parsers_flags() -> None:
    aliases = flag_aliases()
    listed: list[str] = []
    for item in checked_list("flags"):
        named = re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", item)
        assert named, item
        flag = named[0]
        listed.append(flag)
        # Every other flag an item names is another spelling of its own.
        for other in named[1:]:
            assert aliases.get(other, other) == flag, f"{item}: `{other}` is not a spelling of `{flag}`"
    assert len(listed) == len(set(listed))
    assert set(listed) == flags()


# --- buttons -------------------------------------------------------------------------------------


def test_the_button_list_is_the_actions_each_surface_shows() -> None:
    everything = {a.label for a in all_actions()}
    on_slack = slack_buttons()
    listed = {}
    for item in checked_list("buttons"):
        listed[bold_name(item)] = item
    assert set(listed) == everything
    for label, item in listed.items():
        # Discord shows every action; Slack those it has an action id for.
        assert ("Discord only" in item) == (label not in on_slack), item
        assert "Slack only" not in item, item


def test_the_surfaces_render_the_actions_as_the_list_says() -> None:
    # A result made from another (so Undo is offered too), rendered by each surface as it posts it.
    job = dataclasses.replace(make_job(n=1), parent_job_id="a" * 32, result_media=["m1"])
    discord_labels = {str(getattr(item, "label", "")) for item in result_view(job).children}
    [buttons] = [b for b in slack_blocks.result_blocks(job) if b["type"] == "actions"]
    slack_labels = {e["text"]["text"] for e in buttons["elements"] if e["type"] == "button"}
    # The overflow menu's options are actions too (the README says which sit there).
    slack_labels |= {
        o["text"]["text"] for e in buttons["elements"] if e["type"] == "overflow" for o in e["options"]
    }
    offered = {a.label for a in all_actions()}
    assert discord_labels == offered
    assert slack_labels == slack_buttons() & offered


# --- Discord -------------------------------------------------------------------------------------


@pytest.fixture
async def discord_adapter(tmp_path: Path) -> AsyncIterator[DiscordAdapter]:
    async with BotHarness(tmp_path) as bot:
        settings = DiscordSettings.model_validate({"token": FakeDiscord().token})
        adapter = DiscordAdapter(bot.engine, settings)
        yield adapter
        await adapter.client.close()


async def test_the_discord_command_list_is_the_command_tree(discord_adapter: DiscordAdapter) -> None:
    tree = discord_commands(discord_adapter)
    listed: dict[str, tuple[set[str], set[str]]] = {}
    menus: set[str] = set()
    for item in checked_list("discord-commands"):
        if item.startswith("**"):
            menus.add(bold_name(item))
            continue
        m = re.match(r"`/([\w-]+)(?: ([\w|-]+))?`: ", item)
        assert m, f"`{item}` does not start with `/command` or `/command a|b`"
        subs = set(m.group(2).split("|")) if m.group(2) else set()
        shown = re.search(r"\(options: ([^)]*)\)", item)
        named = set(re.findall(r"`([\w-]+)`", shown.group(1))) if shown else set()
        listed[m.group(1)] = (subs, named)
    assert set(listed) == set(tree)
    for name, (subs, options) in listed.items():
        assert subs == set(tree[name].subcommands), name
        assert options == set(tree[name].options), name
    assert menus == discord_menus(discord_adapter)


# --- Slack ---------------------------------------------------------------------------------------


def test_the_slack_scope_list_is_the_manifests() -> None:
    listed = [s for item in checked_list("slack-scopes") for s in leading_names(item)]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(Manifest.read().bot_scopes)
    assert set(listed) == set(SlackSettings().scope_list())


@pytest.fixture
async def slack_listeners(tmp_path: Path) -> AsyncIterator[Listeners]:
    async with FakeSlack() as fake, running(tmp_path, fake, "http") as run:
        yield await Listeners.of(run.adapter.app)


async def test_the_slack_event_list_is_the_manifests_and_the_adapters(slack_listeners: Listeners) -> None:
    listed = [e for item in checked_list("slack-events") for e in leading_names(item)]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(Manifest.read().bot_events)
    assert set(listed) == slack_listeners.events - set(slack_text.IGNORED_EVENTS)


def slack_kinds() -> set[str]:
    """Every kind of `/hidream` text the Slack adapter tells apart: each action of its parser (those
    with a Literal field, one kind per value), and the subject actions (the same as Discord's)."""
    kinds: set[str] = set()
    for cls in typing.get_args(slack_text.SlashAction):
        hints = typing.get_type_hints(cls)
        literal = next(
            (
                hints[f.name]
                for f in dataclasses.fields(cls)
                if typing.get_origin(hints[f.name]) is typing.Literal
            ),
            None,
        )
        kinds |= set(typing.get_args(literal)) if literal is not None else {cls.__name__.lower()}
    return kinds


def slack_kind(text: str) -> str:
    """What the adapter makes of `/hidream TEXT`. The README writes a person as `@user`, which Slack
    sends as an escaped mention (the manifest's `should_escape`)."""
    text = re.sub(r"(?<!\S)@user\b", "<@U0README>", text)
    ask = parse_subject_text(text)
    if ask is not None:
        return f"subject {ask.action}"
    action = slack_text.parse_slash_text(text)
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        if typing.get_origin(typing.get_type_hints(type(action))[f.name]) is typing.Literal:
            return str(value)
    return type(action).__name__.lower()


async def test_the_slack_command_list_covers_what_the_adapter_answers(
    slack_listeners: Listeners, discord_adapter: DiscordAdapter
) -> None:
    items = checked_list("slack-commands")
    examples = [e for item in items for e in re.findall(r"`([/@][^`]+)`", item)]
    commands = {e.split()[0] for e in examples if e.startswith("/")}
    manifest = Manifest.read()
    assert commands == set(manifest.commands) == slack_listeners.commands
    covered = set()
    for example in examples:
        word, _, rest = example.partition(" ")
        if word.startswith("/"):
            covered.add(slack_kind(rest))
        else:  # a mention: only its subject commands are told apart here
            ask = parse_subject_text(rest)
            if ask is not None:
                covered.add(f"subject {ask.action}")
    subject_actions = {
        f"subject {s}" for s in discord_commands(discord_adapter)["hidream-subject"].subcommands
    }
    assert covered == slack_kinds() | subject_actions
    shortcuts = {bold_name(item) for item in items if item.startswith("**")}
    assert shortcuts == set(manifest.shortcut_names)
    assert set(manifest.shortcuts) == slack_listeners.shortcuts


# --- length --------------------------------------------------------------------------------------


def paragraphs(text: str) -> list[str]:
    """Prose outside code blocks, headings and comments: each list item and table row is one."""
    found: list[str] = []
    current: list[str] = []
    in_code = False

    def flush() -> None:
        if current:
            found.append(" ".join(current))
            current.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            flush()
            continue
        if in_code:
            continue
        if not line.strip() or line.startswith("#") or line.startswith("<!--"):
            flush()
        elif re.match(r"\s*(?:- |\d+\. |\|)", line):
            flush()
            current.append(line)
        else:
            current.append(line)
    flush()
    return found


def words(paragraph: str) -> int:
    return len([w for w in paragraph.split() if re.search(r"\w", w)])


def test_paragraphs_are_counted_as_a_reader_sees_them() -> None:
    text = "one two\nthree\n\n- a b\n- c\n\n```\nnot counted at all\n```\n| x | y |\n"
    assert [words(p) for p in paragraphs(text)] == [3, 2, 1, 2]


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) < MAX_LINES
    long = [(words(p), p[:60]) for p in paragraphs(README) if words(p) > MAX_WORDS]
    assert not long


def test_uv_run_lines_leave_the_test_tools_out() -> None:
    runs = re.findall(r"uv run[^`\n]*", README)
    assert runs
    assert all(r.startswith("uv run --no-dev") for r in runs), runs

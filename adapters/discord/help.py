"""What `/hidream-help` (and `/hidream prompt:help`) tells a person, in Discord markdown. Kept under
Discord's 2000 characters for one message; each line is one feature with an example to copy."""

from __future__ import annotations

from typing import Any

from adapters.discord.translate import EXAMPLE_PROVIDER, options_of
from bot import words

HELP_TEXT = words.help_with_options(EXAMPLE_PROVIDER)

HELP_WORDS = ("help", "help?", "?")


def asks_for_help(payload: dict[str, Any]) -> bool:
    """`/hidream prompt:help`: the prompt is required text, so `help` there means the help (a picture
    of the word is still one prompt away: `the word help in neon`)."""
    prompt = str(options_of(payload).get("prompt") or "")
    return " ".join(prompt.split()).lower() in HELP_WORDS

"""What `/hidream-help` (and `/hidream prompt:help`) tells a person, in Discord markdown. Kept under
Discord's 2000 characters for one message; each line is one feature with an example to copy."""

from __future__ import annotations

from typing import Any

from adapters.discord.translate import options_of
from bot.words import subject_in_prompt

HELP_TEXT = (
    "**HiDream: make and edit images** (only you see this)\n"
    "**Make:** `/hidream prompt:a red fox in snow`, with options: `aspect:16:9`, `size`, `count:2`, "
    "`model:dev` (faster), `seed`, `steps`, `guidance`, `format`.\n"
    "**Edit:** `/hidream prompt:make it blue` with an image in `image` (2-4 images are combined), "
    "reply to an image and mention me, or the message menu **Apps > Edit with HiDream**. "
    "In a result's thread, just type the next change.\n"
    "**Saved subjects:** `/hidream-subject save name:mascot` with 1-4 images (or **Save as subject** "
    f"under a result), {subject_in_prompt('/hidream prompt:')} (or the `subject` option). "
    "`/hidream-subject list`, `show`, `delete`.\n"
    "**Versions:** in a result's thread type `undo` (or press **Undo**) to go back one version, "
    "`history` to list them. **Vary** under a result: same prompt, new seed; "
    "**Edit** or **Vary** on an older version continues from it.\n"
    "**Your defaults:** `/hidream-settings aspect:16:9 count:2 private:True` (results only you see); "
    "no options shows them, `reset:True` clears them. Options you type still win.\n"
    "**Providers:** `/hidream prompt:a red fox provider:fal` picks one this bot is configured with; "
    "otherwise the first that can make it (the result says which).\n"
    "**Limits:** `/hidream-usage` shows what you have left today.\n"
    "**Admins** (Manage Server): `/hidream-admin user-limit`, `server-limit`, `grant`, `reset`, `usage`; "
    "`/hidream-policy action:ban value:some phrase` blocks a phrase, and `nsfw` (spoiler, block, allow), "
    "`tier`, `provider` set this server's handling and defaults; `show`, `reset`."
)

HELP_WORDS = ("help", "help?", "?")


def asks_for_help(payload: dict[str, Any]) -> bool:
    """`/hidream prompt:help`: the prompt is required text, so `help` there means the help (a picture
    of the word is still one prompt away: `the word help in neon`)."""
    prompt = str(options_of(payload).get("prompt") or "")
    return " ".join(prompt.split()).lower() in HELP_WORDS

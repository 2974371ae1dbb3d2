"""Every sentence a person reads, once: each surface shows these words (the console without the
Markdown backticks), so Discord, Slack and the console say the same thing."""

from __future__ import annotations

NOT_FOUND = "I no longer have that image; run /hidream again."
SORRY = "Something went wrong on my side; nothing was charged. Please try again."


def too_old(days: int) -> str:
    """What a person is told when a button or an edit needs an image retention deleted."""
    if days <= 0:
        return "That image is no longer held by the bot; attach it again."
    span = "1 day" if days == 1 else f"{days} days"
    return f"That image is older than {span} and was deleted; run /hidream again."

"""Every sentence a person reads from the chat surfaces, once: Discord, Slack and the console show
these words (the console without Markdown's backticks), so every surface says the same thing. The
use cases (bot/usecases/) phrase their replies from here; adapters add no sentence of their own."""

from __future__ import annotations

# --- anything a job, image or message names ------------------------------------------------------

NOT_FOUND = "I no longer have that image; run /hidream again."
SORRY = "Something went wrong on my side; nothing was charged. Please try again."


def too_old(days: int) -> str:
    """What a person is told when a button or an edit needs an image retention deleted."""
    if days <= 0:
        return "That image is no longer held by the bot; attach it again."
    span = "1 day" if days == 1 else f"{days} days"
    return f"That image is older than {span} and was deleted; run /hidream again."


# --- deleting a result ----------------------------------------------------------------------------

DELETE_REFUSED = "Only the person who asked for these images, or an admin or moderator here, can delete them."

# --- saved subjects -------------------------------------------------------------------------------

SUBJECT_USE = "write `@{name}` in a prompt, or `--subject {name}`"
NO_SUBJECTS = "No subjects are saved here yet."
SUBJECTS_HEADING = "Saved subjects:"


def subject_saved(name: str, count: int) -> str:
    return f"Saved subject `{name}` ({count} image(s)). Use it: {SUBJECT_USE.format(name=name)}."


def subject_deleted(name: str) -> str:
    return f"Deleted subject `{name}`."


def subject_line(name: str, count: int) -> str:
    return f"`{name}`: {count} image(s)"


def subject_shown(name: str) -> str:
    return f"Subject `{name}`"


# --- limits and usage -----------------------------------------------------------------------------

LIMITS_REFUSED = "Only the admins of this server or workspace can change limits."
USAGE_REFUSED = "Only the admins of this server or workspace can see someone else's usage."
NOT_IN_A_DM = "Limits are set in a server or workspace, not in a direct message."


def member(user_id: str) -> str:
    return f"<@{user_id}>"


def limit_set(who: str | None, images: int | None) -> str:
    """`who` None: everyone here; `images` None: back to the default limit."""
    subject = "everyone here" if who is None else member(who)
    limit = "the default limit" if images is None else f"{images} images a day"
    return f"Done: {subject} now has {limit}."


def granted(who: str, images: int) -> str:
    return f"Done: {member(who)} got {images} extra images for today."


def reset(who: str) -> str:
    return f"Done: {member(who)} starts today's count from zero."


def usage_of(who: str | None, status_text: str) -> str:
    """A quota status as its owner reads it ("You have ..."), or as an admin reads someone's."""
    return status_text if who is None else f"{member(who)}: " + status_text.replace("You have", "has", 1)


# --- personal settings and a tenant's policy --------------------------------------------------------

POLICY_REFUSED = "Only the admins of this server or workspace can see or change its policy."
# Where a surface can hide an image behind a spoiler, an allowed flagged image shows only in an
# age-restricted channel; where it cannot, "spoiler" is no choice.
SPOILERS_NOTE = " Flagged images are shown only in age-restricted channels; elsewhere they get a spoiler."
NO_SPOILERS = "Spoilers are not available here: use `policy nsfw block`, `allow` or `default`."


def subject_in_prompt(make: str) -> str:
    """How a saved subject is used, for a surface's help; `make` is how a prompt starts there."""
    return f"then use it: `{make}@mascot surfing a wave` or `{make}surfing --subject mascot`"

"""Every sentence a person reads from the chat surfaces, once: every surface and the console show
these words (the console without Markdown's backticks), so every surface says the same thing. The
use cases (bot/usecases/) phrase their replies from here; adapters add no sentence of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

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


class Usage(Protocol):
    """What a usage line says (storage/quota.py's QuotaStatus, as the core's policy made it)."""

    @property
    def used(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def resets_at(self) -> datetime: ...
    @property
    def now(self) -> float: ...
    @property
    def ceiling(self) -> int | None: ...
    @property
    def tenant_used(self) -> int: ...
    @property
    def budget_usd(self) -> float | None: ...
    @property
    def month_spent_usd(self) -> float: ...
    @property
    def show_spend(self) -> bool: ...


def usage_text(status: Usage) -> str:
    """A person's quota in their tenant, in words."""
    left = max(0, int(status.resets_at.timestamp() - status.now))
    text = (
        f"You have {status.remaining} of {status.limit} images left today "
        f"(used {status.used}); the count resets at 00:00 UTC, in {left // 3600}h {left % 3600 // 60}m."
    )
    if status.ceiling is not None:
        text += f" This server or workspace has made {status.tenant_used} of its {status.ceiling} today."
    if status.show_spend and status.budget_usd is not None:
        text += f" Spend this month: ${status.month_spent_usd:.2f} of ${status.budget_usd:.2f}."
    return text


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


# --- images and messages a person points at ---------------------------------------------------------

NO_IMAGE = "That message has no image I can edit: use it on a message with a PNG, JPEG, WebP or GIF attached."
MESSAGE_GONE = "That message is gone; nothing to edit."
REPLIED_GONE = "The message you replied to is gone; nothing to edit."
REPLIED_NO_IMAGE = "The message you replied to has no image: reply to an image and say what to change."
WHICH_MESSAGE = "I could not tell which message that was; try again."
FORM_OUT_OF_DATE = "This form is out of date; start again from the button or the menu."
NOT_A_VERSION = "That image is not a version of a thread I know of, so there is nothing to undo."
SAVE_SUBJECT_HOW = "Attach 1 to 4 images to `save subject <name>`, or say it in a result's thread."
CANNOT_POST = "I cannot post in this channel. Invite me first: `/invite @HiDream`."
PRIVATE_NOTICE = "You chose private results: I am making this in our direct messages, where it will arrive."
APP_REMOVED = "This workspace removed the HiDream app, so the image was not made; your quota was given back."

_MIB = 1_048_576


def too_many_images(count: int, most: int) -> str:
    return f"{count} images are attached; the most I can use is {most}."


def not_an_image(name: str, kind: str) -> str:
    return f"`{name}` is not an image ({kind}): attach a PNG, JPEG, WebP or GIF file."


def image_too_large(name: str, size: int, most: int) -> str:
    return f"`{name}` is {size / _MIB:.1f} MB; the most allowed is {most / _MIB:.0f} MB."


def file_unavailable(name: str) -> str:
    return f"The file `{name}` is not available to the bot."


def file_without_link(name: str) -> str:
    return f"The file `{name}` has no download link the bot can use."


# --- the console's commands -------------------------------------------------------------------------

EDIT_EXAMPLE = (
    "Say what to change, e.g. `/edit last make it night` (or `/edit <job id>#2 ...` for its second image)."
)
NOTHING_MADE_YET = "There is no finished image yet: make one first, e.g. /hidream a red fox in snow"
SUBJECT_USAGE = (
    "Usage: /subject save <name> <image files | job id | last>..., /subject list, "
    "/subject show <name>, /subject delete <name>"
)


def choose_image(job: str, count: int) -> str:
    return f"{job} has {count} image(s): choose #1 to #{count}, or #all."


def no_such_target(target: str) -> str:
    """The console's "not found": `target` names no file, and no finished job of the asker's."""
    return f"{target!r} is neither an image file nor a finished job: give a path, a job id, or `last`."


def no_chain(job: str) -> str:
    return f"{job} is not a version of any chain yet."


# --- saved subjects: storage bounds ------------------------------------------------------------------


def subject_taken(name: str) -> str:
    return (
        f"A subject named `{name}` already exists here (names ignore case): pick another name, or delete "
        "that one first."
    )


def subjects_full(limit: int) -> str:
    return (
        f"Nothing was saved: {limit} subjects are saved here, the most the bot keeps for one place. "
        "Delete one that is no longer needed, then save again."
    )


def subject_storage_full(used_mb: float, budget_mb: int, adding_mb: float | None = None) -> str:
    adding = "" if adding_mb is None else f", and these images take {adding_mb:.1f} MB more"
    return (
        f"Nothing was saved: the subjects saved here take {used_mb:.1f} MB of their {budget_mb} MB{adding}. "
        "Delete a subject that is no longer needed, or save fewer or smaller images."
    )

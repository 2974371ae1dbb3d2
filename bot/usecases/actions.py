"""The buttons under a result, decided once for every surface: which actions a job offers, in what
order, with what words and weight. A surface renders this list in its own terms (buttons, a
chat platform's components) and maps each `Kind` to its persistent id; adding an action to results is
one line here, its words in bot/words.py, and its handler where a surface answers presses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot import words
from bot.model.jobs import Job


class Kind(Enum):
    REROLL = "reroll"
    # Vary (Subtle): the persistent id of the button that was "Vary" before the toolbox.
    VARY = "vary"
    VARY_STRONG = "vary_strong"
    EDIT = "edit"
    # A rectangle of the image changed on the region editor's page (bot/usecases/region.py).
    REGION = "region"
    UPSCALE = "upscale"
    ZOOM_15 = "zoom15"
    ZOOM_2 = "zoom2"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    SQUARE = "square"
    UNDO = "undo"
    DELETE = "delete"
    SUBJECT = "subject"
    FINAL = "final"
    REMIX = "remix"


class Weight(Enum):
    """How a surface sets an action apart: the main ones, the rest, and the ones that destroy."""

    MAIN = "main"
    PLAIN = "plain"
    DANGER = "danger"


@dataclass(frozen=True)
class Action:
    kind: Kind
    label: str
    emoji: str
    weight: Weight
    # The person confirms first, where a surface can ask (what is lost cannot be made again).
    confirm: bool = False


REROLL = Action(Kind.REROLL, words.ACTION_REROLL, "🎲", Weight.MAIN)
VARY = Action(Kind.VARY, words.ACTION_VARY, "🔀", Weight.MAIN)
VARY_STRONG = Action(Kind.VARY_STRONG, words.ACTION_VARY_STRONG, "🌀", Weight.MAIN)
EDIT = Action(Kind.EDIT, words.ACTION_EDIT, "✏️", Weight.PLAIN)
REGION = Action(Kind.REGION, words.ACTION_REGION, "🔲", Weight.PLAIN)
# The toolbox (bot/usecases/toolbox.py): the result made again bigger, or on a larger canvas.
UPSCALE = Action(Kind.UPSCALE, words.ACTION_UPSCALE, "🔍", Weight.MAIN)
ZOOM_15 = Action(Kind.ZOOM_15, words.ACTION_ZOOM_15, "", Weight.PLAIN)
ZOOM_2 = Action(Kind.ZOOM_2, words.ACTION_ZOOM_2, "", Weight.PLAIN)
PAN_LEFT = Action(Kind.PAN_LEFT, words.ACTION_PAN_LEFT, "", Weight.PLAIN)
PAN_RIGHT = Action(Kind.PAN_RIGHT, words.ACTION_PAN_RIGHT, "", Weight.PLAIN)
PAN_UP = Action(Kind.PAN_UP, words.ACTION_PAN_UP, "", Weight.PLAIN)
PAN_DOWN = Action(Kind.PAN_DOWN, words.ACTION_PAN_DOWN, "", Weight.PLAIN)
SQUARE = Action(Kind.SQUARE, words.ACTION_SQUARE, "", Weight.PLAIN)
TOOLS = (UPSCALE, ZOOM_15, ZOOM_2, SQUARE, PAN_LEFT, PAN_RIGHT, PAN_UP, PAN_DOWN)
# A form with the request as typed, edited and made again (bot/usecases/remix.py).
REMIX = Action(Kind.REMIX, words.ACTION_REMIX, "🎛️", Weight.PLAIN)
UNDO = Action(Kind.UNDO, words.ACTION_UNDO, "↩️", Weight.PLAIN)
DELETE = Action(Kind.DELETE, words.ACTION_DELETE, "🗑️", Weight.DANGER, confirm=True)
SUBJECT = Action(Kind.SUBJECT, words.ACTION_SUBJECT, "📌", Weight.PLAIN)
FINAL = Action(Kind.FINAL, words.ACTION_FINAL, "✨", Weight.MAIN)


def result_actions(job: Job) -> tuple[Action, ...]:
    """What a delivered job offers. Final first under a draft (its render on the full model); Undo only
    on a job made from another image: there is a version to go back to."""
    final = (FINAL,) if job.request.draft else ()
    undo = (UNDO,) if job.parent_job_id else ()
    return (*final, REROLL, VARY, VARY_STRONG, EDIT, REGION, *TOOLS, REMIX, *undo, DELETE, SUBJECT)

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
    VARY = "vary"
    EDIT = "edit"
    UNDO = "undo"
    DELETE = "delete"
    SUBJECT = "subject"
    FINAL = "final"


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
EDIT = Action(Kind.EDIT, words.ACTION_EDIT, "✏️", Weight.PLAIN)
UNDO = Action(Kind.UNDO, words.ACTION_UNDO, "↩️", Weight.PLAIN)
DELETE = Action(Kind.DELETE, words.ACTION_DELETE, "🗑️", Weight.DANGER, confirm=True)
SUBJECT = Action(Kind.SUBJECT, words.ACTION_SUBJECT, "📌", Weight.PLAIN)
FINAL = Action(Kind.FINAL, words.ACTION_FINAL, "✨", Weight.MAIN)


def result_actions(job: Job) -> tuple[Action, ...]:
    """What a delivered job offers. Final first under a draft (its render on the full model); Undo only
    on a job made from another image: there is a version to go back to."""
    final = (FINAL,) if job.request.draft else ()
    undo = (UNDO,) if job.parent_job_id else ()
    return (*final, REROLL, VARY, EDIT, *undo, DELETE, SUBJECT)

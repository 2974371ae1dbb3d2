"""What each provider documents, as data: its modes and models, its sizes, the knobs it takes and its
price. The one source for two things: the checks a request passes before it is admitted (`check`: a
flag the provider cannot honour is refused, naming the providers that can) and the table
`hidream-bot providers` prints (`table`). Each provider module declares its own `Capabilities` from
its documentation (provider-docs/); nothing here names a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot import words
from bot.model.errors import BadInput
from bot.model.requests import GUIDANCE_MAX, GUIDANCE_MIN, STEPS_MAX, ImageRequest, Tier

Mode = Literal["text-to-image", "edit"]
MODES: tuple[Mode, ...] = ("text-to-image", "edit")
TIERS: tuple[Tier, ...] = ("full", "dev")
FORMATS = ("png", "jpeg", "webp")
# The bot's own limits where a provider documents none.
BOT_STEPS = (1.0, float(STEPS_MAX))
BOT_GUIDANCE = (GUIDANCE_MIN, GUIDANCE_MAX)


@dataclass(frozen=True)
class Span:
    lo: float
    hi: float

    def holds(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def text(self) -> str:
        return f"{self.lo:g} to {self.hi:g}"


@dataclass(frozen=True)
class Knob:
    """A flag a provider may or may not take: its name as typed, and what it is in plain words (as in
    "which takes no step count")."""

    key: str
    flag: str
    what: str


NEGATIVE = Knob("negative", "--no", "negative prompt")
STEPS = Knob("steps", "--steps", "step count")
GUIDANCE = Knob("guidance", "--cfg", "guidance scale")
KEEP_ASPECT = Knob("keep_aspect", "--keep-aspect", "option to keep a reference's aspect ratio")
KNOBS = (NEGATIVE, STEPS, GUIDANCE, KEEP_ASPECT)


@dataclass(frozen=True)
class Capabilities:
    """One provider's documented offer."""

    name: str  # as `--provider` names it
    label: str  # as people write it
    # The documented model (or endpoint) of each mode at each tier; a missing pair is not offered.
    models: Mapping[tuple[Mode, Tier], str]
    # Output sizes in plain words, for the table (the checks are the provider's own `validate`).
    sizes: str
    price: str
    # Documented ranges per tier; a tier missing here does not take the knob.
    steps: Mapping[Tier, Span] = field(default_factory=dict)
    guidance: Mapping[Tier, Span] = field(default_factory=dict)
    formats: tuple[str, ...] = FORMATS
    negative_prompt: bool = False
    keep_aspect: bool = False
    # The most images one request makes.
    n_max: int = 4

    def tiers(self, mode: Mode) -> tuple[Tier, ...]:
        return tuple(t for t in TIERS if (mode, t) in self.models)

    def offers(self, knob: Knob, tier: Tier | None = None) -> bool:
        """Whether the knob is taken (at `tier`, or at any tier)."""
        if knob is NEGATIVE:
            return self.negative_prompt
        if knob is KEEP_ASPECT:
            return self.keep_aspect
        spans = self.steps if knob is STEPS else self.guidance
        return bool(spans) if tier is None else tier in spans

    def knobs(self) -> list[str]:
        """The table's knob column: each taken knob, with its ranges."""
        out = []
        for knob, spans in ((STEPS, self.steps), (GUIDANCE, self.guidance)):
            if spans:
                ranges = ", ".join(f"{t} {s.text()}" for t, s in spans.items())
                out.append(f"{knob.flag} ({ranges})")
        if self.negative_prompt:
            out.append(NEGATIVE.flag)
        if self.keep_aspect:
            out.append(KEEP_ASPECT.flag)
        out.append(f"--format {'|'.join(self.formats)}")
        out.append(f"--n 1-{self.n_max}")
        return out


def mode_of(n_refs: int) -> Mode:
    """Edits and personalization take reference images, on the same models."""
    return "edit" if n_refs else "text-to-image"


def asked_knobs(request: ImageRequest) -> list[tuple[Knob, str]]:
    """The knobs a request sets, each with its value as typed."""
    asked: list[tuple[Knob, str]] = []
    if request.negative:
        asked.append((NEGATIVE, request.negative))
    if request.steps is not None:
        asked.append((STEPS, str(request.steps)))
    if request.guidance is not None:
        asked.append((GUIDANCE, f"{request.guidance:g}"))
    if request.keep_aspect:
        asked.append((KEEP_ASPECT, ""))
    return asked


def check(
    caps: Capabilities,
    request: ImageRequest,
    tier: Tier,
    n_refs: int,
    catalogue: Sequence[Capabilities] = (),
) -> None:
    """Raise BadInput (nothing spent) for what `caps` does not document: a model for the mode and
    tier, a knob (naming the providers of `catalogue` that take it), a value out of its range."""
    mode = mode_of(n_refs)
    offered = caps.tiers(mode)
    if tier not in offered:
        if tier == "dev" and offered:
            others = [c.label for c in catalogue if c.name != caps.name and "dev" in c.tiers(mode)]
            models = ", ".join(caps.models[(mode, t)] for t in offered)
            raise BadInput(words.no_draft_model(caps.label, mode, models, others))
        raise BadInput(
            f"The {caps.name} provider offers no `{tier}` model for {mode}s; "
            f"use {' or '.join(offered) or 'another provider'}."
        )
    for knob, value in asked_knobs(request):
        if not caps.offers(knob, tier):
            others = [c.label for c in catalogue if c.name != caps.name and c.offers(knob, tier)]
            typed = f"{knob.flag} {value}".strip()
            raise BadInput(words.knob_refused(typed, knob.what, caps.label, others))
        spans = caps.steps if knob is STEPS else caps.guidance if knob is GUIDANCE else None
        if spans is not None and not spans[tier].holds(float(value)):
            where = f"{caps.label}'s {tier} model"
            raise BadInput(words.knob_out_of_range(knob.flag, value, where, spans[tier].text()))
    if request.format not in caps.formats:
        raise BadInput(words.format_refused(request.format, caps.label, ", ".join(caps.formats)))


def table(catalogue: Sequence[Capabilities]) -> str:
    """Each provider's capabilities as plain text, one block each (`hidream-bot providers`)."""
    blocks = []
    for caps in catalogue:
        lines = [f"{caps.label} (--provider {caps.name})"]
        for mode in MODES:
            tiers = caps.tiers(mode)
            models = "; ".join(f"{t}: {caps.models[(mode, t)]}" for t in tiers) or "not offered"
            lines.append(f"  {mode + ':':<15} {models}")
        lines.append(f"  {'sizes:':<15} {caps.sizes}")
        lines.append(f"  {'knobs:':<15} {', '.join(caps.knobs())}")
        missing = [k.flag for k in KNOBS if not caps.offers(k)]
        if missing:
            lines.append(f"  {'not offered:':<15} {', '.join(missing)}")
        lines.append(f"  {'price:':<15} {caps.price}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

"""The toolbox under a result, for every surface: Upscale, Zoom Out 1.5x and 2x, Pan in four
directions, Make Square, and Vary (Strong). Each is written once here; a surface maps its button, menu
or command to a `Kind` (bot/usecases/actions.py) and calls `use_tool`.

Each tool is an edit of the result's first image, admitted like any other (quota, budget, provider
choice and the tenant's charge, through `Admits.submit`), with the result as its parent, so it is the
next version of the result's thread and undo and history cover it:

- Upscale: the image itself as the reference, an instruction to change nothing, on the full model at
  the largest size the provider documents in the image's shape (`ImageRequest.largest`).
- Zoom Out, Pan, Make Square: the bot builds a larger canvas (bot/jobs/canvas.py: the image pasted
  unchanged, the new area mid grey), which goes as the one reference with an instruction to fill the
  grey; the result takes the canvas's shape (`keep_aspect`, sized by the canvas).
- Vary (Strong): the same prompt, flags and references with a new seed (`remake`); Vary (Subtle) is
  `remake(vary=True)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot import words
from bot.jobs.canvas import Layout, build
from bot.jobs.images import to_data_uri
from bot.model.errors import BadInput
from bot.model.jobs import Job, OutputImage
from bot.model.requests import PROMPT_MAX, ChatRequest, ImageRef, ImageRequest
from bot.providers.base import Provider
from bot.usecases.actions import TOOLS, Kind
from bot.usecases.actor import Actor
from bot.usecases.remake import Admits, remake

LAYOUTS = {
    Kind.ZOOM_15: Layout.ZOOM_15,
    Kind.ZOOM_2: Layout.ZOOM_2,
    Kind.PAN_LEFT: Layout.PAN_LEFT,
    Kind.PAN_RIGHT: Layout.PAN_RIGHT,
    Kind.PAN_UP: Layout.PAN_UP,
    Kind.PAN_DOWN: Layout.PAN_DOWN,
    Kind.SQUARE: Layout.SQUARE,
}
# Every kind `use_tool` answers.
TOOL_KINDS = frozenset({*LAYOUTS, Kind.UPSCALE, Kind.VARY, Kind.VARY_STRONG})
LABELS = {action.kind: action.label for action in TOOLS}
# The console's words for a zoom and a pan.
ZOOMS = {"1.5": Kind.ZOOM_15, "2": Kind.ZOOM_2, "2.0": Kind.ZOOM_2}
PANS = {"left": Kind.PAN_LEFT, "right": Kind.PAN_RIGHT, "up": Kind.PAN_UP, "down": Kind.PAN_DOWN}


class Toolkit(Admits, Protocol):
    @property
    def providers(self) -> Mapping[str, Provider]: ...

    async def result_images(self, job: Job) -> list[OutputImage]: ...


@dataclass(frozen=True)
class ToolJob:
    """The job a tool admitted, and what to say about it before it is charged ("" for nothing)."""

    job: Job
    note: str = ""


def label(kind: Kind) -> str:
    return LABELS.get(kind) or (words.ACTION_VARY_STRONG if kind is Kind.VARY_STRONG else words.ACTION_VARY)


def verb(kind: Kind) -> str:
    """How a surface's status line names what the person asked for."""
    if kind is Kind.VARY:
        return words.ASKED_TO_VARY
    if kind is Kind.VARY_STRONG:
        return words.VARIED
    return words.UPSCALED if kind is Kind.UPSCALE else words.EXTENDED


def instruction(base: str, prompt: str) -> str:
    """The instruction, then the scene as first asked for (cut to fit the longest prompt)."""
    text = f"{base} {words.SCENE} {prompt}"
    return text if len(text) <= PROMPT_MAX else text[: PROMPT_MAX - 1] + "…"


async def use_tool(
    kit: Toolkit,
    actor: Actor,
    job: Job,
    kind: Kind,
    *,
    origin: dict[str, Any],
    dedup_key: str | None = None,
) -> ToolJob:
    """Admit `kind` on `job`, a job the lookup handed the actor. Raises a UserFacingError (nothing
    charged) when it cannot be."""
    if kind in (Kind.VARY, Kind.VARY_STRONG):
        made = await remake(kit, actor, job, vary=kind is Kind.VARY, origin=origin, dedup_key=dedup_key)
        return ToolJob(made)
    if kind not in TOOL_KINDS:
        raise ValueError(f"{kind} is no tool")
    if not job.result_media:
        raise BadInput(words.too_old(kit.settings.media_retention_days))
    request = ImageRequest(
        prompt=instruction(words.UPSCALE_INSTRUCTION, job.request.prompt),
        format=job.request.format,
        model="full",
        keep_aspect=True,
        largest=True,
        # Its prompt holds the source's style kit (not applied again): the result names that kit.
        kit=job.request.kit,
        kit_version=job.request.kit_version,
    )
    reference = ImageRef(url="", media_id=job.result_media[0])
    if kind is not Kind.UPSCALE:
        first = (await kit.result_images(job))[0]
        canvas = await asyncio.to_thread(build, LAYOUTS[kind], first.data)
        reference = ImageRef(url=to_data_uri(canvas.png, "image/png"), filename="canvas.png")
        request = request.with_changes(
            prompt=instruction(words.OUTPAINT_INSTRUCTION, job.request.prompt),
            model=job.tier,
            largest=False,
        )
    chat = ChatRequest(
        surface=actor.surface,
        user_id=actor.user_id,
        workspace_id=actor.workspace_id,
        # Counted under the channel it was asked in, and reviewed as that channel is.
        channel_id=actor.channel_id,
        home_channel_id=actor.home_channel,
        origin=origin,
        request=request,
        references=[reference],
        parent_job_id=job.id,
        resolve_subjects=False,
    )
    made = await kit.submit(chat, dedup_key=dedup_key)
    return ToolJob(made, _note(kit, made, kind))


def _note(kit: Toolkit, made: Job, kind: Kind) -> str:
    """Upscale's price, when the tenant may see spend and it is not what an image costs."""
    provider = kit.providers.get(made.provider)
    if kind is not Kind.UPSCALE or provider is None or not kit.settings.show_spend:
        return ""
    usual = provider.cost_usd(made.request.with_changes(largest=False), made.tier)
    if abs(usual - made.cost_usd) < 1e-9:
        return ""
    return words.tool_costs(label(kind), made.cost_usd, usual)

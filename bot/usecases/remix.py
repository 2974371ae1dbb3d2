"""Remix, for every surface: a result's request shown as its requester would type it (the prompt and
its flags), changed by them and made again as the next version of the result's thread.

- `form`: what a surface's form is filled in with, and the console's line.
- `read`: the text handed back, parsed as any request is (a bad flag is refused in our words before
  anything is looked up or spent), and whether the image is kept (`--fresh` drops it, on any surface).
- `remix`: with the image kept, an edit whose one reference is the result's first image (plus any URL
  typed in the text), in its shape unless the text names another; without it, a new request from the
  text alone. Either way its parent is the result, so it lands in the result's thread as its next
  version, and it is admitted like any request (quota, budget, provider choice), charged to the
  actor's tenant.

The job is the one `target` hands the actor (bot/usecases/access.py): another tenant's is "not found".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import MAX_REFERENCES, ChatRequest, ImageRef, ImageRequest, parse_command
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor
from bot.usecases.remake import Admits

# `--fresh`, and the dashes phones and Macs turn "--" into.
_FRESH = {words.REMIX_FRESH, "\u2014fresh", "\u2013fresh"}


@dataclass(frozen=True)
class Form:
    """What a remix form starts with: the request as typed, and the image kept."""

    text: str
    keep: bool = True


@dataclass(frozen=True)
class Remix:
    """A remix as handed back: the request it makes, the URLs typed in it, whether the image is kept."""

    request: ImageRequest
    urls: tuple[str, ...]
    keep: bool


def form(job: Job) -> Form:
    return Form(as_typed(job))


def as_typed(job: Job) -> str:
    """The job's prompt and flags as a person would type them: what shapes the image (its size, seed,
    knobs, model), the phrase flag `--no` last, since it runs to the next flag."""
    r = job.request
    flags = [*_size(r), *(["--seed", str(job.seed)] if job.seed is not None else [])]
    if r.steps is not None:
        flags += ["--steps", str(r.steps)]
    if r.guidance is not None:
        flags += ["--cfg", f"{r.guidance:g}"]
    if r.n != 1:
        flags += ["--n", str(r.n)]
    if r.format != "png":
        flags += ["--format", r.format]
    if r.largest:
        flags.append("--upscale")
    elif r.draft:
        flags.append("--draft")
    elif job.tier == "dev":
        flags += ["--model", "dev"]
    for name in r.subjects:
        flags += ["--subject", name]
    if r.provider:
        flags += ["--provider", r.provider]
    if r.project:
        flags += ["--project", r.project]
    if r.kit:
        flags += ["--kit", r.kit]
    if r.negative:
        flags += ["--no", r.negative]
    # A kitted job's prompt holds the kit's prefix and suffix: the person's own words, and `--kit`,
    # make the same prompt again without wrapping it twice.
    prompt = r.typed_prompt if r.kit and r.typed_prompt is not None else r.prompt
    return " ".join([prompt, *flags])


def _size(r: ImageRequest) -> list[str]:
    if r.width is not None and r.height is not None:
        return ["--size", f"{r.width}x{r.height}"]
    if r.aspect is not None:
        return ["--ar", f"{r.aspect[0]}:{r.aspect[1]}"]
    if r.preset is not None:
        return ["--size", r.preset]
    if r.follows_source and r.source is not None:
        # An edit in its image's shape: the same shape, so a remix without the image keeps it too.
        w, h = r.source
        if 0.25 <= w / h <= 4.0:
            d = math.gcd(w, h)
            return ["--ar", f"{w // d}:{h // d}"]
    return []


def read(text: str, *, keep: bool) -> Remix:
    """The remix the text asks for. Pure, so a surface may call it before it acknowledges (a form
    then shows the refusal). Raises BadInput: an empty prompt, a bad flag, a set (`--repeat`)."""
    tokens = text.split()
    if any(t.lower() in _FRESH for t in tokens):
        keep = False
        tokens = [t for t in tokens if t.lower() not in _FRESH]
    parsed = parse_command(" ".join(tokens))
    return Remix(parsed.request, tuple(parsed.urls), keep)


async def target(lookup: Lookup, actor: Actor, job_id: str, shown_in: str = "") -> Job:
    """The job a remix names, if the actor may see it (`shown_in`: the message its button sits
    under, for a channel shared by several workspaces). Raises BadInput "not found" otherwise."""
    job = await (lookup.shown_in(actor, job_id, shown_in) if shown_in else lookup.job(actor, job_id))
    if job is None:
        raise BadInput(words.NOT_FOUND)
    return job


async def remix(
    admits: Admits,
    actor: Actor,
    job: Job,
    asked: Remix,
    *,
    origin: dict[str, Any],
    dedup_key: str | None = None,
) -> Job:
    """Admit the remix of `job` for `actor`. Raises a UserFacingError (nothing charged) when it cannot
    be: the image is no longer held, too many images, or anything admission refuses."""
    kept: list[ImageRef] = []
    if asked.keep:
        if not job.result_media:
            raise BadInput(words.too_old(admits.settings.media_retention_days))
        kept = [ImageRef(url="", media_id=job.result_media[0])]
    references = [*kept, *(ImageRef(url=u, typed=True) for u in asked.urls)]
    if len(references) > MAX_REFERENCES:
        raise BadInput(words.too_many_images(len(references), MAX_REFERENCES))
    chat = ChatRequest(
        surface=actor.surface,
        user_id=actor.user_id,
        workspace_id=actor.workspace_id,
        channel_id=actor.channel_id,
        home_channel_id=actor.home_channel,
        origin=origin,
        request=asked.request,
        references=references,
        parent_job_id=job.id,
    )
    return await admits.submit(chat, dedup_key=dedup_key)

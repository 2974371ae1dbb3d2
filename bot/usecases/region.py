"""Region edits: the Edit region button (and `/region` on the console) gives the image's requester a
signed link, for EDITOR_SECONDS, to a small editor page on the bot's own server (bot/web/region.py),
where they drag a rectangle over the image and write what to change there.

The link is `/edit/<fields>.<exp>.<sig>`: the job, the image's index, the requester (surface, server or
workspace, person) in base64url JSON, signed with the media links' key (`LinkSigner.seal`, under the
word `edit:`). Only a link this bot signed, not expired, for the image's own requester opens the page;
the job is looked up in the requester's tenant (`Lookup`), like any other.

The form sends the same signed link back (its own CSRF token: nobody else can know it) with the
rectangle in the image's pixels and the instruction. The job is admitted like any tool's (quota,
budget, the tenant's charge, `Admits.submit`), at most once per link (its signature is the job's
dedup key), with the result as its parent, so it is the next version in the result's thread, where its
surface posts it (`Continues.followup_origin`). bot/jobs/regions.py cuts the crop it sends and blends
the edited crop back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bot import words
from bot.jobs.images import LinkSigner, to_data_uri
from bot.jobs.regions import check_area, cut
from bot.model.errors import BadInput
from bot.model.jobs import Continues, Job, JobState, OutputImage, Surface
from bot.model.requests import ChatRequest, ImageRef, ImageRequest, Region
from bot.usecases.access import Lookup, Queries
from bot.usecases.actor import Actor, Reply
from bot.usecases.remake import Admits

EDITOR_SECONDS = 30 * 60
TEXT_MAX = 1000
# The word a region link's signature is made under: no media link's signature is one of its.
PURPOSE = "edit:"


class LinkRefused(BadInput):
    """A link that opens nothing: `status` is the HTTP status its page is answered with."""

    def __init__(self, user_message: str, status: int) -> None:
        super().__init__(user_message)
        self.status = status


class RegionKit(Admits, Queries, Protocol):
    """What region edits need of the engine."""

    async def link_signer(self) -> LinkSigner: ...

    async def result_images(self, job: Job) -> list[OutputImage]: ...

    async def job_by_dedup(self, dedup_key: str) -> Job | None: ...


@dataclass(frozen=True)
class Pass:
    """What a region link carries, once its signature is checked."""

    job_id: str
    index: int
    surface: str
    workspace_id: str
    user_id: str
    exp: int
    sig: str

    @property
    def actor(self) -> Actor:
        return Actor(self.surface, self.workspace_id, self.user_id)


@dataclass(frozen=True)
class Editor:
    """What the editor page shows: the image (through a signed media link on this server), its size,
    and the link the form sends back."""

    token: str
    image_url: str
    width: int
    height: int
    prompt: str
    text_max: int = TEXT_MAX


def _encode(fields: list[object]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def editor_path(signer: LinkSigner, job: Job, index: int, *, now: float) -> str:
    """The editor's link (without the server's address) for image `index` of `job`, for its requester."""
    fields = _encode([job.id, index, job.surface, job.workspace_id, job.user_id])
    exp, sig = signer.seal(PURPOSE + fields, now=now, ttl=EDITOR_SECONDS)
    return f"/edit/{fields}.{exp}.{sig}"


def read_link(signer: LinkSigner, token: str, *, now: float) -> Pass:
    """The fields of a region link this bot signed. Raises LinkRefused (in our words) for a link that
    is expired, or that it did not sign as it is."""
    fields, _, rest = token.partition(".")
    exp, _, sig = rest.partition(".")
    verdict = signer.check(PURPOSE + fields, exp, sig, now=now)
    if verdict == "expired":
        raise LinkRefused(words.REGION_LINK_EXPIRED, 410)
    if verdict != "ok":
        raise LinkRefused(words.REGION_LINK_INVALID, 403)
    try:
        job_id, index, surface, workspace_id, user_id = json.loads(
            base64.urlsafe_b64decode(fields + "=" * (-len(fields) % 4))
        )
    except (ValueError, TypeError, binascii.Error):
        raise LinkRefused(words.REGION_LINK_INVALID, 403) from None
    return Pass(str(job_id), int(index), str(surface), str(workspace_id), str(user_id), int(exp), sig)


async def region_link(kit: RegionKit, actor: Actor, job: Job, index: int = 0, *, now: float) -> Reply:
    """Edit region: the requester's private link to the editor for image `index` of `job`, a job the
    lookup handed the actor. Raises BadInput when the actor did not ask for it, or it is gone."""
    if not actor.owns(job) or job.user_id != actor.user_id:
        raise BadInput(words.REGION_NOT_YOURS)
    if not 0 <= index < len(job.result_media):
        raise BadInput(words.too_old(kit.settings.media_retention_days))
    signer = await kit.link_signer()
    url = signer.base_url + editor_path(signer, job, index, now=now)
    return Reply(words.region_link(url, EDITOR_SECONDS // 60), private=True)


class RegionDesk:
    """The editor page's two steps, for bot/web/region.py: open a link, and admit what its form sent.
    `surfaces`: the running surfaces by name (the worker's), which say where a result goes."""

    def __init__(self, kit: RegionKit, surfaces: Mapping[str, Surface]) -> None:
        self.kit = kit
        self.surfaces = surfaces
        self.lookup = Lookup(kit)

    async def _target(self, token: str, now: float) -> tuple[LinkSigner, Pass, Job, OutputImage]:
        signer = await self.kit.link_signer()
        opened = read_link(signer, token, now=now)
        job = await self.lookup.job(opened.actor, opened.job_id)
        # Only the image's requester: a link signed for anyone else in the tenant opens nothing.
        if job is None or job.user_id != opened.user_id or not 0 <= opened.index < len(job.result_media):
            raise LinkRefused(words.REGION_GONE, 404)
        images = await self.kit.result_images(job)
        return signer, opened, job, images[opened.index]

    async def open(self, token: str, *, now: float) -> Editor:
        signer, opened, job, image = await self._target(token, now)
        # The picture's own link lasts as long as the editor's.
        url = signer.path(image.media_id, now=now, ttl=max(1.0, opened.exp - now))
        return Editor(token, url, image.width, image.height, job.request.prompt)

    async def submit(self, token: str, form: Mapping[str, str], *, now: float) -> Job:
        """Admit the region edit the form describes. Raises a UserFacingError (nothing charged) when
        it cannot be."""
        _, opened, job, image = await self._target(token, now)
        text = form.get("text", "").strip()
        if not text:
            raise BadInput(words.REGION_NO_TEXT)
        if len(text) > TEXT_MAX:
            raise BadInput(words.region_text_too_long(TEXT_MAX))
        area = read_area(form)
        box = check_area(area, (image.width, image.height))
        surface = self.surfaces.get(job.surface)
        if not isinstance(surface, Continues):
            raise BadInput(words.REGION_NOT_HERE)
        origin = await surface.followup_origin(job, await self.kit.versions.thread_of(job.surface, job.id))
        if origin is None:
            raise BadInput(words.REGION_NOT_HERE)
        crop = await asyncio.to_thread(cut, image.data, box)
        request = ImageRequest(
            prompt=text,
            format="png",  # blended back pixel for pixel: never through a lossy encoding
            model=job.tier,
            keep_aspect=True,
            region=Region(source=image.media_id, crop=box, area=area),
        )
        chat = ChatRequest(
            surface=job.surface,
            user_id=opened.user_id,
            workspace_id=opened.workspace_id,
            channel_id=job.channel,
            home_channel_id=job.home_channel,  # a thread's edit is reviewed as its channel is
            origin=origin,
            request=request,
            references=[ImageRef(url=to_data_uri(crop, "image/png"), filename="region.png")],
            parent_job_id=job.id,
            resolve_subjects=False,
        )
        # One job at a time per link: sending the form again (a double tap, a reload) gets the job
        # under way back; once that one failed (and was refunded) the link may try again.
        return await self.kit.submit(chat, dedup_key=await self._attempt(opened.sig))

    async def _attempt(self, sig: str) -> str:
        """The dedup key of this link's next attempt: its first key no failed job holds."""
        tries = 0
        while True:
            key = f"region:{sig}" + (f"#{tries}" if tries else "")
            held = await self.kit.job_by_dedup(key)
            if held is None or held.state is not JobState.FAILED:
                return key
            tries += 1


def read_area(form: Mapping[str, str]) -> tuple[int, int, int, int]:
    """The rectangle the form sent (`x`, `y`, `w`, `h` in the image's pixels) as (left, top, right,
    bottom). Raises BadInput when there is none."""
    try:
        x, y, w, h = (int(form.get(name, "")) for name in ("x", "y", "w", "h"))
    except ValueError:
        raise BadInput(words.REGION_NO_AREA) from None
    if w <= 0 or h <= 0:
        raise BadInput(words.REGION_NO_AREA)
    return x, y, x + w, y + h

"""Style kits, on the engine's side: how an admin writes one (`kit save <name> --prefix <words>
--suffix <words> --no <words> --subject <name> --ar W:H ...`, its flags checked by the request
parser), and the one place a kit meets a request (`KitBook.apply`, called by the engine before
personal defaults).

A kit applies to a request as typed (not to a reroll or a tool, whose prompt already holds it): its
prefix and suffix around the prompt, its flags where the person typed none of their own, its subject
among the references, and its negative prompt where the person gave none (the engine passes it on
only to a provider that takes one). A channel bound to a kit uses it for every request there: a
request may name that kit, but not another. The job keeps the kit's name and version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot import words
from bot.jobs.subjects import SubjectBook
from bot.model.errors import BadInput
from bot.model.requests import (
    NEGATIVE_MAX,
    PROMPT_MAX,
    ChatRequest,
    ImageRequest,
    build_request,
    check_kit_name,
    check_subject_name,
    split_command,
)
from storage.kits import Kit, Kits
from storage.store import Store

# The flags a kit may keep as defaults (its negative prompt is `--no`, its subject `--subject`).
KIT_FLAGS = ("ar", "size", "model", "format", "n", "steps", "cfg")
# A kit's prefix or suffix, each at most this long.
PART_MAX = 1000
_PHRASES = ("prefix", "suffix")
_FLAG_RE = re.compile(r"^(?:--|\u2014|\u2013)([A-Za-z][\w-]*)$")
# The ImageRequest fields each kit flag sets.
_FIELDS_OF = {
    "ar": ("aspect",),
    "size": ("preset", "width", "height"),
    "model": ("model",),
    "format": ("format",),
    "n": ("n",),
    "steps": ("steps",),
    "cfg": ("guidance",),
}


@dataclass(frozen=True)
class KitSpec:
    """What an admin wrote for a kit, checked."""

    prefix: str = ""
    suffix: str = ""
    negative: str = ""
    subject: str = ""
    flags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Applied:
    """A request with its kit applied, and the kit's negative prompt for the engine to pass on where
    the chosen provider takes one (None: no kit's negative is waiting)."""

    chat: ChatRequest
    negative: str | None = None


def _phrases(text: str) -> tuple[dict[str, str], str]:
    """`--prefix` and `--suffix` (every word up to the next flag) taken out; the rest of the text."""
    tokens, found, rest = text.split(), dict[str, str](), list[str]()
    i = 0
    while i < len(tokens):
        m = _FLAG_RE.match(tokens[i])
        name = m.group(1).lower() if m else ""
        if name not in _PHRASES:
            rest.append(tokens[i])
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and not _FLAG_RE.match(tokens[j]):
            j += 1
        if name in found or j == i + 1:
            raise BadInput(words.KIT_USAGE)
        found[name] = " ".join(tokens[i + 1 : j])
        if len(found[name]) > PART_MAX:
            raise BadInput(words.kit_part_too_long(f"--{name}", len(found[name]), PART_MAX))
        i = j
    return found, " ".join(rest)


def parse_kit(text: str) -> KitSpec:
    """What follows `kit save <name>`: checked as a request's flags would be. Raises BadInput."""
    phrases, rest = _phrases(text)
    parts = split_command(rest)
    if parts.words or parts.urls:
        raise BadInput(words.kit_loose_words(" ".join(parts.words + parts.urls)[:60]))
    allowed = ", ".join(f"--{f}" for f in KIT_FLAGS)
    for flag in parts.values:
        if flag not in KIT_FLAGS and flag != "no":
            raise BadInput(words.kit_flag_refused(flag, allowed))
    if len(parts.subjects) > 1:
        raise BadInput(words.KIT_ONE_SUBJECT)
    subject = check_subject_name(parts.subjects[0]) if parts.subjects else ""
    checked = build_request("kit", parts.values)  # bad values get the parser's own words
    negative = checked.negative or ""
    flags = tuple(sorted((k, v) for k, v in parts.values.items() if k != "no"))
    spec = KitSpec(phrases.get("prefix", ""), phrases.get("suffix", ""), negative, subject, flags)
    if spec == KitSpec():
        raise BadInput(words.KIT_EMPTY)
    return spec


def describe(kit: Kit) -> list[tuple[str, str]]:
    """A kit's parts as `kit show` lists them."""
    flags = " ".join(f"--{k} {v}" for k, v in sorted(kit.flags.items()))
    parts = {"prefix": kit.prefix, "suffix": kit.suffix, "negative": kit.negative, "subject": kit.subject}
    return [(words.KIT_PARTS[k], v) for k, v in {**parts, "flags": flags}.items() if v]


class KitBook:
    def __init__(self, store: Store, subjects: SubjectBook) -> None:
        self.store = store
        self.subjects = subjects
        self._table: Kits | None = None

    @property
    def table(self) -> Kits:
        # Made on first use: stores without SQL (tests' doubles) work while nobody uses kits.
        if self._table is None:
            self._table = Kits(self.store)
        return self._table

    async def save(self, tenant: str, creator: str, name: str, text: str) -> Kit:
        """Keep a kit (its next version when the name is kept already); its subject must exist here."""
        check_kit_name(name)
        spec = parse_kit(text)
        if spec.subject:
            await self.subjects.get(tenant, spec.subject)
        parts = (spec.prefix, spec.suffix, spec.negative, spec.subject)
        return await self.table.save(Kit(tenant, name, 0, *parts, dict(spec.flags), creator))

    async def all(self, tenant: str) -> list[Kit]:
        return await self.table.all(tenant)

    async def get(self, tenant: str, name: str) -> Kit:
        check_kit_name(name)
        kit = await self.table.find(tenant, name)
        if kit is None:
            raise BadInput(words.no_such_kit(name, [k.name for k in await self.table.all(tenant)]))
        return kit

    async def delete(self, tenant: str, name: str) -> Kit:
        kit = await self.get(tenant, name)
        await self.table.delete(tenant, name)
        return kit

    async def bind(self, tenant: str, channel: str, name: str | None) -> Kit | None:
        kit = None if name is None else await self.get(tenant, name)
        await self.table.bind(tenant, channel, None if kit is None else kit.name)
        return kit

    async def bound(self, tenant: str, channel: str, home: str = "") -> Kit | None:
        """The kit `channel` is bound to; for a thread (`home`: the channel it is in), its channel's
        when the thread itself is bound to none."""
        kit = await self.table.bound(tenant, channel)
        if kit is None and home and home != channel:
            kit = await self.table.bound(tenant, home)
        return kit

    async def _chosen(self, tenant: str, chat: ChatRequest, asked: str | None) -> Kit | None:
        """The channel's kit (a thread's is its channel's), else the one asked for (`--kit`), else
        none. A request in a bound channel may name its kit, not another."""
        kit = await self.bound(tenant, chat.channel_id, chat.home_channel_id)
        if kit is not None and asked is not None and asked.lower() != kit.key:
            raise BadInput(words.kit_is_bound(kit.name, asked))
        if kit is None and asked is not None:
            kit = await self.get(tenant, asked)
        return kit

    async def apply(self, chat: ChatRequest, tenant: str) -> Applied:
        """The request with the kit it names, or its channel's, applied. Raises BadInput (nothing
        spent) for an unknown kit, or another kit than the one the channel is bound to."""
        request = chat.request
        if request.explicit is None:
            return Applied(chat)  # a remake: made from a job whose prompt holds its kit already
        kit = await self._chosen(tenant, chat, request.kit)
        if kit is None:
            return Applied(chat)
        prompt = " ".join(p for p in (kit.prefix, request.prompt, kit.suffix) if p)
        if len(prompt) > PROMPT_MAX:
            raise BadInput(words.kit_prompt_too_long(kit.name, len(prompt), PROMPT_MAX))
        # An edit keeps its image's shape: a kit's aspect or size is for new images only.
        skipped = ("ar", "size") if chat.references else ()
        filled = _filled(request, {k: v for k, v in kit.flags.items() if k not in skipped})
        subjects = request.subjects
        if kit.subject and kit.subject.lower() not in {s.lower() for s in subjects}:
            subjects = (*subjects, kit.subject)
        changes: dict[str, Any] = {
            **filled,
            "prompt": prompt,
            "typed_prompt": request.prompt,
            "subjects": subjects,
            "kit": kit.name,
            "kit_version": kit.version,
            # The kit's flags count as typed: a person's defaults do not replace them.
            "explicit": (request.explicit | {k for k in kit.flags if k not in skipped}),
        }
        negative = kit.negative[:NEGATIVE_MAX] if kit.negative and request.negative is None else None
        return Applied(chat.model_copy(update={"request": request.with_changes(**changes)}), negative)


def _filled(request: ImageRequest, flags: dict[str, str]) -> dict[str, Any]:
    """The fields `flags` gives that the person did not type (size and aspect count as one)."""
    typed = request.explicit or frozenset()
    if typed & {"ar", "size"}:
        flags = {k: v for k, v in flags.items() if k not in ("ar", "size")}
    wanted = {k: v for k, v in flags.items() if k not in typed}
    if not wanted:
        return {}
    made = build_request(request.prompt, wanted)
    return {f: getattr(made, f) for k in wanted for f in _FIELDS_OF[k]}

"""The request model and the one flag parser every surface shares.

`parse_command("a red fox --ar 16:9 --seed 7")` turns what a person typed into an `ImageRequest`
plus the http(s) URLs they wrote (reference images). Every error is a `BadInput` whose message
names the flag, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot import words
from bot.model.errors import BadInput

Tier = Literal["full", "dev"]
OutputFormat = Literal["png", "jpeg", "webp"]

PROMPT_MAX = 5000
SEED_MAX = 2_147_483_647
STEPS_MAX = 100
DEV_STEPS_MAX = 28
N_MAX = 4
# Reference images one request may use (an edit takes one, personalization two to four).
MAX_REFERENCES = 4
SIDE_MIN, SIDE_MAX = 256, 2048
# `--upscale` and the Upscale tool: the long side of the largest size the providers document.
LARGEST_SIDE = SIDE_MAX
GUIDANCE_MIN, GUIDANCE_MAX = 0.0, 20.0
# A negative prompt (`--no ...`): what the image should not show.
NEGATIVE_MAX = 1000
# A set of jobs from one request: `{a, b}` choices multiplied, times `--repeat`.
SET_MAX = 12
REPEAT_MAX = 8
# A set of more than this many jobs is confirmed by its requester before anything is spent.
CONFIRM_OVER = 4
# A saved subject's name (bot/jobs/subjects.py): written after `--subject` or as `@name` in a prompt.
SUBJECT_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
SUBJECT_NAME_RULE = "1 to 32 letters, digits, `-` or `_`"
# A project's tag (`--project`, a channel's default project): kept in lower case, so `Launch` and
# `launch` count as one.
PROJECT_TAG_RE = re.compile(r"[a-z0-9_-]{1,32}")
PROJECT_TAG_RULE = "1 to 32 letters, digits, `-` or `_`"
# Aspect ratios are sized to about one megapixel, sides rounded to a multiple of 16.
AR_TARGET_PIXELS = 1024 * 1024

PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
DEFAULT_PRESET = "square_hd"


class Region(BaseModel):
    """A region edit (the region editor, bot/usecases/region.py): the stored image it changes, the box
    of it sent to the provider (`crop`: the rectangle drawn plus a margin) and the rectangle the person
    drew (`area`), both (left, top, right, bottom) in that image's pixels. Its result is blended back
    into the image before delivery (bot/jobs/regions.py)."""

    model_config = ConfigDict(frozen=True)

    source: str
    crop: tuple[int, int, int, int]
    area: tuple[int, int, int, int]


class ImageRequest(BaseModel):
    """What to make, independent of surface and provider. Values here are already validated."""

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    preset: str | None = None
    width: int | None = Field(default=None, ge=SIDE_MIN, le=4096)
    height: int | None = Field(default=None, ge=SIDE_MIN, le=4096)
    aspect: tuple[int, int] | None = None
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    steps: int | None = Field(default=None, ge=1, le=STEPS_MAX)
    guidance: float | None = Field(default=None, ge=GUIDANCE_MIN, le=GUIDANCE_MAX)
    n: int = Field(default=1, ge=1, le=N_MAX)
    format: OutputFormat = "png"
    model: Tier | None = None
    keep_aspect: bool = False
    # What the image should not show (`--no`), for a provider that documents a negative prompt.
    negative: str | None = Field(default=None, max_length=NEGATIVE_MAX)
    # A draft (`--draft`): made on the Dev model, offered a Final render on the full one.
    draft: bool = False
    # Saved subjects named by `--subject`: the engine turns them into reference images at admission.
    subjects: tuple[str, ...] = ()
    # The flags the person gave (from the parser): fields not named here may take their personal
    # defaults (bot/jobs/preferences.py). None: nothing left to fill in (defaults applied, or a reroll).
    explicit: frozenset[str] | None = None
    # A provider asked for by name (`--provider`): checked against the configured ones at admission.
    provider: str | None = Field(default=None, max_length=40)
    # The one reference image's size in pixels, recorded at admission when the output follows its
    # shape (`keep_aspect`, the default of an edit): what a provider without keep_original_aspect sizes by.
    source: tuple[int, int] | None = None
    # `--upscale`: the largest size the provider documents (LARGEST_SIDE on the long side), same shape.
    largest: bool = False
    # The project the job is counted under (`--project`), checked by `check_project_tag`.
    project: str | None = Field(default=None, max_length=32)
    # A region edit: where its result goes back into the image it edits (None: any other request).
    region: Region | None = None
    # A style kit (`--kit`, or the one its channel is bound to): the name asked for, then, once the
    # engine applied it, the name as saved and the version used (bot/jobs/kits.py).
    kit: str | None = Field(default=None, max_length=32)
    kit_version: int | None = None
    # The prompt as the person typed it, before a kit's prefix and suffix went round it (None: no kit
    # applied), so a remix shows them their own words, and the kit applies once again.
    typed_prompt: str | None = None

    def dimensions(self) -> tuple[int, int]:
        """The output size in pixels (width, height) this request asks for."""
        size = self._shape()
        return long_side(*size, LARGEST_SIDE) if self.largest else size

    def _shape(self) -> tuple[int, int]:
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.aspect is not None:
            return size_for_aspect(*self.aspect)
        if self.follows_source and self.source is not None:
            return size_for_aspect(*self.source)
        return PRESETS[self.preset or DEFAULT_PRESET]

    @property
    def follows_source(self) -> bool:
        """The output takes its one reference's shape: no size of its own was asked for."""
        return (
            self.keep_aspect
            and self.source is not None
            and self.aspect is None
            and self.width is None
            and self.preset is None
        )

    @property
    def sized(self) -> bool:
        """Whether the size is the bot's to spell out in pixels (a size, a ratio, the reference's shape,
        or the largest size) rather than a preset's name or the provider's own default."""
        return self.largest or self.width is not None or self.aspect is not None or self.follows_source

    def size_label(self) -> str:
        if self.preset:
            return self.preset
        if self.aspect:
            return f"{self.aspect[0]}:{self.aspect[1]}"
        w, h = self.dimensions()
        return f"{w}x{h}"

    def with_changes(self, **changes: Any) -> ImageRequest:
        return self.model_copy(update=changes)


def long_side(w: int, h: int, side: int) -> tuple[int, int]:
    """Shape w:h with its long side `side`, the other a multiple of 16 (at least SIDE_MIN)."""
    short = max(SIDE_MIN, min(side, round(side * min(w, h) / max(w, h) / 16) * 16))
    return (side, short) if w >= h else (short, side)


def size_for_aspect(w: int, h: int) -> tuple[int, int]:
    """About one megapixel at ratio w:h, sides a multiple of 16 within SIDE_MIN..SIDE_MAX."""
    ratio = w / h
    height = (AR_TARGET_PIXELS / ratio) ** 0.5
    width = height * ratio

    def clamp16(v: float) -> int:
        return max(SIDE_MIN, min(SIDE_MAX, round(v / 16) * 16))

    return clamp16(width), clamp16(height)


class ImageRef(BaseModel):
    """A reference image as a surface found it. Fetched by the engine before the job is admitted."""

    url: str
    # Typed by a person (not handed over by a platform API): only public addresses are fetched.
    typed: bool = False
    # Headers for the fetch, e.g. a bearer token for a private file. Never stored or logged.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    filename: str | None = None
    # An image the bot already holds (a previous result): no fetch at all.
    media_id: str | None = None


class ChatRequest(BaseModel):
    """A request as an adapter hands it to the engine."""

    surface: str
    user_id: str
    workspace_id: str = ""
    # Adapter-defined, JSON-serialisable: where to answer (channel, thread, interaction token...).
    origin: dict[str, Any] = Field(default_factory=dict)
    # The channel it was asked in, as the platform names it (stamped from the Actor by
    # bot.usecases.make): recorded on the job for costs by channel and a channel's default project.
    channel_id: str = ""
    # The channel whose policies hold (its review): `channel_id`'s parent when that is a thread, else
    # empty (then `channel_id` itself). Stamped from the Actor, as `channel_id` is.
    home_channel_id: str = ""
    request: ImageRequest
    references: list[ImageRef] = Field(default_factory=list)
    parent_job_id: str | None = None
    # False when the references are already final (a reroll of a stored job): `@name` in its prompt
    # was resolved when the job was first admitted.
    resolve_subjects: bool = True


@dataclass
class ParsedCommand:
    request: ImageRequest
    urls: list[str] = field(default_factory=list)


@dataclass
class ParsedSet:
    """A command that may ask for several jobs: one `ParsedCommand` per job (each `{a, b}` choice,
    times `--repeat`), and whether its requester confirmed it already (`--yes`)."""

    commands: list[ParsedCommand]
    confirmed: bool = False

    @property
    def first(self) -> ParsedCommand:
        return self.commands[0]


_FLAGS_WITH_VALUE = (
    "ar",
    "size",
    "seed",
    "steps",
    "cfg",
    "n",
    "format",
    "model",
    "provider",
    "project",
    "repeat",
    "kit",
)
_BOOL_FLAGS = ("keep-aspect", "upscale", "draft", "yes")
# Flags that may be given more than once, each time with a value.
_REPEATED_FLAGS = ("subject",)
# Flags whose value is every word up to the next flag (`--no trees, people`).
_PHRASE_FLAGS = ("no",)
KNOWN_FLAGS = _FLAGS_WITH_VALUE + _BOOL_FLAGS + _REPEATED_FLAGS + _PHRASE_FLAGS
# Flags about the set of jobs a command makes, not about any one image.
SET_FLAGS = ("repeat", "yes")
_FLAG_ALIASES = {"aspect": "ar", "guidance": "cfg", "num": "n", "keep_aspect": "keep-aspect"}
# Phones and Macs turn "--" into an em or en dash; people mean the flag.
_FLAG_RE = re.compile(r"^(?:--|\u2014|\u2013)([A-Za-z][\w-]*)$")
_URL_RE = re.compile(r"^<?(https?://[^\s<>|]+)(?:\|[^>]*)?>?$")


def _allowed_presets() -> str:
    return ", ".join(PRESETS)


@dataclass
class CommandParts:
    """A command's text taken apart, before any value is checked."""

    words: list[str]
    values: dict[str, str]
    subjects: list[str]
    urls: list[str]


def parse_command(text: str) -> ParsedCommand:
    """Parse `prompt [--flag value ...]`; flags may appear anywhere. URLs become references. One job
    only: where a set could be meant (`--repeat` more than once), it is refused (`parse_set` makes sets)."""
    parts = split_command(text)
    if parts.values.get("repeat", "1").strip() not in ("1", ""):
        _parse_int("repeat", parts.values["repeat"], 1, REPEAT_MAX)
        raise BadInput(words.ONE_AT_A_TIME)
    return ParsedCommand(
        request=build_request(" ".join(parts.words), parts.values, parts.subjects), urls=parts.urls
    )


_CHOICES_RE = re.compile(r"\{([^{}]*)\}")


def expand_choices(text: str) -> list[str]:
    """`a {red, blue} fox` as the texts it stands for, one per choice; several braces multiply (the
    first brace's choices vary slowest). Refuses more than SET_MAX texts before making them."""
    groups = _CHOICES_RE.findall(text)
    count = 1
    for group in groups:
        choices = [c.strip() for c in group.split(",")]
        if any(not c for c in choices):
            raise BadInput(words.EMPTY_CHOICE)
        count *= len(choices)
    if count > SET_MAX:
        raise BadInput(words.set_too_large(count, SET_MAX))
    texts = [text]
    while _CHOICES_RE.search(texts[0]):
        expanded = []
        for one in texts:
            m = _CHOICES_RE.search(one)
            assert m is not None
            for choice in m.group(1).split(","):
                expanded.append(one[: m.start()] + choice.strip() + one[m.end() :])
        texts = expanded
    if any("{" in t or "}" in t for t in texts):
        raise BadInput(words.UNBALANCED_BRACES)
    return texts


def parse_set(text: str) -> ParsedSet:
    """A command that may make several jobs: each `{a, b}` choice, each `--repeat` (a fixed `--seed`
    steps by one per repeat, so the images differ). At most SET_MAX jobs."""
    commands: list[ParsedCommand] = []
    confirmed = False
    for variant in expand_choices(text):
        parts = split_command(variant)
        request = build_request(" ".join(parts.words), parts.values, parts.subjects)
        confirmed = confirmed or "yes" in parts.values
        commands += [
            ParsedCommand(request=repeated(request, k), urls=parts.urls)
            for k in range(int(parts.values.get("repeat", "1")))
        ]
        if len(commands) > SET_MAX:
            repeat = int(parts.values.get("repeat", "1"))
            total = len(expand_choices(text)) * repeat
            raise BadInput(words.set_too_large(total, SET_MAX))
    return ParsedSet(commands=commands, confirmed=confirmed)


def repeated(request: ImageRequest, k: int) -> ImageRequest:
    """The k-th repeat of a request: a seed it fixed steps by k; else each draws its own."""
    if k == 0 or request.seed is None:
        return request
    return request.with_changes(seed=(request.seed + k) % (SEED_MAX + 1))


def split_command(text: str) -> CommandParts:
    """The prompt's words, its flags' raw values, its `--subject` names and its URLs."""
    tokens = text.split()
    words: list[str] = []
    urls: list[str] = []
    values: dict[str, str] = {}
    subjects: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        m = _FLAG_RE.match(tok)
        if m:
            name = m.group(1).lower()
            name = _FLAG_ALIASES.get(name, name)
            if name not in KNOWN_FLAGS:
                raise BadInput(_unknown_flag_message(name))
            if name in _PHRASE_FLAGS:
                if name in values:
                    raise BadInput(f"`--{name}` is given twice; give it once.")
                j = i + 1
                while j < len(tokens) and not _FLAG_RE.match(tokens[j]):
                    j += 1
                if j == i + 1:
                    raise BadInput(f"`--{name}` needs a value: {_flag_help(name)}.")
                values[name] = " ".join(tokens[i + 1 : j])
                i = j
                continue
            if name in _REPEATED_FLAGS:
                if i + 1 >= len(tokens) or _FLAG_RE.match(tokens[i + 1]):
                    raise BadInput(f"`--{name}` needs a value: {_flag_help(name)}.")
                subjects.append(tokens[i + 1])
                i += 2
                continue
            if name in values:
                raise BadInput(f"`--{name}` is given twice; give it once.")
            if name in _BOOL_FLAGS:
                values[name] = "true"
                i += 1
                continue
            if i + 1 >= len(tokens) or _FLAG_RE.match(tokens[i + 1]):
                raise BadInput(f"`--{name}` needs a value: {_flag_help(name)}.")
            values[name] = tokens[i + 1]
            i += 2
            continue
        u = _URL_RE.match(tok)
        if u:
            urls.append(u.group(1))
        else:
            words.append(tok)
        i += 1
    return CommandParts(words, values, subjects, urls)


def check_subject_name(name: str) -> str:
    if not SUBJECT_NAME_RE.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise BadInput(f"`{shown}` is not a subject name: use {SUBJECT_NAME_RULE}, e.g. `mascot`.")
    return name


def check_kit_name(name: str) -> str:
    if not SUBJECT_NAME_RE.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise BadInput(words.not_a_kit_name(shown, SUBJECT_NAME_RULE))
    return name


def check_project_tag(raw: str, *, flag: str = "--project") -> str:
    """A project tag as kept (lower case); BadInput naming what is allowed."""
    tag = raw.strip().lower()
    if not PROJECT_TAG_RE.fullmatch(tag):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadInput(
            f"`{flag} {shown}` is not a project tag: use {PROJECT_TAG_RULE}, e.g. `spring-launch`."
        )
    return tag


def build_request(prompt: str, values: dict[str, str], subjects: list[str] | None = None) -> ImageRequest:
    """Validate flag values given as strings (from text or a platform's typed options)."""
    prompt = prompt.strip()
    if not prompt:
        raise BadInput(
            "The prompt is empty: say what the image should show, e.g. `/hidream a red fox in snow`."
        )
    if len(prompt) > PROMPT_MAX:
        raise BadInput(f"The prompt is {len(prompt)} characters long; the most allowed is {PROMPT_MAX}.")
    fields: dict[str, Any] = {"prompt": prompt}
    if subjects:
        names = [check_subject_name(name) for name in subjects]
        if len({n.lower() for n in names}) < len(names):
            raise BadInput("A subject is named twice; give each `--subject` once.")
        if len(names) > MAX_REFERENCES:
            raise BadInput(
                f"{len(names)} subjects are named; a request can use at most {MAX_REFERENCES} images."
            )
        fields["subjects"] = tuple(names)
    if "ar" in values and "size" in values:
        raise BadInput("Give either `--ar` or `--size`, not both.")
    if "ar" in values:
        fields["aspect"] = _parse_aspect(values["ar"])
    if "size" in values:
        fields.update(_parse_size(values["size"]))
    if "seed" in values:
        fields["seed"] = _parse_int("seed", values["seed"], 0, SEED_MAX)
    if "steps" in values:
        fields["steps"] = _parse_int("steps", values["steps"], 1, STEPS_MAX)
    if "cfg" in values:
        fields["guidance"] = _parse_float("cfg", values["cfg"], GUIDANCE_MIN, GUIDANCE_MAX)
    if "n" in values:
        fields["n"] = _parse_int("n", values["n"], 1, N_MAX)
    if "format" in values:
        fmt = values["format"].lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in ("png", "jpeg", "webp"):
            raise BadInput(f"`--format {values['format']}` is not allowed: use png, jpeg or webp.")
        fields["format"] = fmt
    if "model" in values:
        tier = values["model"].lower()
        if tier not in ("full", "dev"):
            raise BadInput(f"`--model {values['model']}` is not allowed: use full or dev.")
        fields["model"] = tier
    if "provider" in values:
        fields["provider"] = _parse_provider(values["provider"])
    if "project" in values:
        fields["project"] = check_project_tag(values["project"])
    if "kit" in values:
        fields["kit"] = check_kit_name(values["kit"])
    if values.get("keep-aspect", "").lower() in ("true", "1", "yes"):
        fields["keep_aspect"] = True
    if values.get("upscale", "").lower() in ("true", "1", "yes"):
        if fields.get("model") == "dev":
            raise BadInput(words.UPSCALE_IS_FULL)
        fields.update(largest=True, model="full")
    if "no" in values:
        fields["negative"] = _parse_negative(values["no"])
    if values.get("draft", "").lower() in ("true", "1", "yes"):
        if fields.get("model") == "full":
            raise BadInput(words.DRAFT_IS_DEV)
        fields["draft"] = True
        fields["model"] = "dev"
    if "repeat" in values:
        _parse_int("repeat", values["repeat"], 1, REPEAT_MAX)
    # A draft names its model: a personal default model does not replace it.
    named = {"model"} if fields.get("draft") else set()
    fields["explicit"] = frozenset(v for v in values if v not in SET_FLAGS) | named
    request = ImageRequest(**fields)
    check_tier_limits(request, request.model)
    return request


def check_tier_limits(request: ImageRequest, tier: Tier | None) -> None:
    if tier == "dev" and request.steps is not None and request.steps > DEV_STEPS_MAX:
        raise BadInput(
            f"`--steps {request.steps}` is too many for the dev model: "
            f"use 1 to {DEV_STEPS_MAX}, or `--model full` for up to {STEPS_MAX}."
        )


def _flag_help(name: str) -> str:
    return {
        "ar": "an aspect ratio W:H between 1:4 and 4:1, e.g. 16:9",
        "size": f"WxH with each side {SIDE_MIN} to {SIDE_MAX}, or a preset ({_allowed_presets()})",
        "seed": f"a whole number from 0 to {SEED_MAX}",
        "steps": f"a whole number from 1 to {STEPS_MAX} (dev: at most {DEV_STEPS_MAX})",
        "cfg": f"a number from {GUIDANCE_MIN:g} to {GUIDANCE_MAX:g}",
        "n": f"a whole number from 1 to {N_MAX}",
        "format": "png, jpeg or webp",
        "model": "full or dev",
        "subject": f"a saved subject's name ({SUBJECT_NAME_RULE})",
        "provider": "the name of a provider this bot is configured with (`hidream-bot providers` lists them)",
        "project": f"a project tag ({PROJECT_TAG_RULE})",
        "repeat": f"a whole number from 1 to {REPEAT_MAX}",
        "kit": f"a style kit's name ({SUBJECT_NAME_RULE})",
        "no": f"the words the image should not show, up to {NEGATIVE_MAX} characters",
    }[name]


def _unknown_flag_message(name: str) -> str:
    close = difflib.get_close_matches(name, KNOWN_FLAGS, n=1, cutoff=0.4)
    hint = f" Did you mean `--{close[0]}`?" if close else ""
    known = ", ".join(f"--{f}" for f in KNOWN_FLAGS)
    return f"`--{name}` is not a known flag.{hint} Known flags: {known}."


def _parse_int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"`--{name} {raw}` is not a whole number: use {_flag_help(name)}.") from None
    if not lo <= value <= hi:
        raise BadInput(f"`--{name} {raw}` is out of range: use {_flag_help(name)}.")
    return value


def _parse_float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"`--{name} {raw}` is not a number: use {_flag_help(name)}.") from None
    if not lo <= value <= hi or value != value:
        raise BadInput(f"`--{name} {raw}` is out of range: use {_flag_help(name)}.")
    return value


def _parse_negative(raw: str) -> str:
    text = " ".join(raw.split())
    if len(text) > NEGATIVE_MAX:
        raise BadInput(f"`--no` is {len(text)} characters long; the most allowed is {NEGATIVE_MAX}.")
    return text


def _parse_provider(raw: str) -> str:
    name = raw.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
        raise BadInput(f"`--provider {raw[:40]}` is not a provider name: use {_flag_help('provider')}.")
    return name


def _parse_aspect(raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,4})\s*[:x/]\s*(\d{1,4})", raw.strip())
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise BadInput(f"`--ar {raw}` is not an aspect ratio: use {_flag_help('ar')}.")
    w, h = int(m.group(1)), int(m.group(2))
    if not 0.25 <= w / h <= 4.0:
        raise BadInput(f"`--ar {raw}` is out of range: use {_flag_help('ar')}.")
    return w, h


def _parse_size(raw: str) -> dict[str, Any]:
    key = raw.strip().lower()
    if key in PRESETS:
        return {"preset": key}
    m = re.fullmatch(r"(\d{2,5})\s*[x*×]\s*(\d{2,5})", key)
    if not m:
        close = difflib.get_close_matches(key, list(PRESETS), n=1, cutoff=0.5)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise BadInput(f"`--size {raw}` is not a size.{hint} Use {_flag_help('size')}.")
    w, h = int(m.group(1)), int(m.group(2))
    if not (SIDE_MIN <= w <= SIDE_MAX and SIDE_MIN <= h <= SIDE_MAX):
        raise BadInput(f"`--size {raw}` is out of range: use {_flag_help('size')}.")
    if not 0.25 <= w / h <= 4.0:
        raise BadInput(f"`--size {raw}` is too narrow: the aspect ratio must be between 1:4 and 4:1.")
    return {"width": w, "height": h}

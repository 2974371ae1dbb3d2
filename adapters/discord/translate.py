"""Discord payloads -> the core's requests. Pure functions over the JSON Discord sends, no I/O.

Everything here works on the raw dicts (an interaction's payload, a MESSAGE_CREATE payload), so it
is tested on recorded JSON and the adapter stays a thin layer over discord.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot import words
from bot.model.errors import BadInput
from bot.model.requests import (
    MAX_REFERENCES,
    SET_MAX,
    ChatRequest,
    ImageRef,
    build_request,
    expand_choices,
    parse_command,
    repeated,
    split_command,
)

SURFACE = "discord"
ATTACHMENT_OPTIONS = ("image", "image2", "image3", "image4")
# Typed slash-command option -> the flag name the shared parser knows.
OPTION_FLAGS = {
    "aspect": "ar",
    "size": "size",
    "seed": "seed",
    "steps": "steps",
    "guidance": "cfg",
    "count": "n",
    "format": "format",
    "model": "model",
    "keep_aspect": "keep-aspect",
    "provider": "provider",
    "upscale": "upscale",
    "project": "project",
    "kit": "kit",
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
CUSTOM_ID_PREFIX = "hidream"
# The provider the help and the command menus name in their examples.
EXAMPLE_PROVIDER = "fal"
INSTRUCTION_FIELD = "instruction"
# The Remix form's "keep the image" checkbox.
KEEP_FIELD = "keep"
# Discord's longest text input value.
TEXT_INPUT_MAX = 4000
_MENTION_RE = r"<@!?{bot_id}>"


@dataclass(frozen=True)
class MessageAsk:
    """What a chat message asks of the bot, before any lookup of the job it may refer to."""

    message_id: str
    channel_id: str
    guild_id: str | None
    user_id: str
    text: str
    mentioned: bool
    reply_to_id: str | None = None
    # The referenced message as Discord embedded it (may be absent when Discord did not resolve it).
    reply_to: dict[str, Any] | None = None
    # The channel Discord says the referenced message is in.
    reply_to_channel_id: str | None = None
    images: list[dict[str, Any]] = field(default_factory=list)


def user_id_of(payload: dict[str, Any]) -> str:
    """The person behind an interaction (guild: member.user, DM: user) or a message (author)."""
    for holder in (payload.get("member") or {}, payload):
        for key in ("user", "author"):
            user = holder.get(key)
            if isinstance(user, dict) and "id" in user:
                return str(user["id"])
    raise ValueError("payload names no user")


def workspace_of(payload: dict[str, Any]) -> str:
    return str(payload.get("guild_id") or "")


def channel_id_of(payload: dict[str, Any]) -> str:
    channel = payload.get("channel") or {}
    return str(payload.get("channel_id") or channel.get("id") or "")


def options_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The command's options by name, sub-commands flattened."""
    found: dict[str, Any] = {}
    stack = list((payload.get("data") or {}).get("options") or [])
    while stack:
        opt = stack.pop()
        if "options" in opt:
            stack.extend(opt["options"])
        elif "value" in opt:
            found[opt["name"]] = opt["value"]
    return found


def is_image(attachment: dict[str, Any]) -> bool:
    ctype = str(attachment.get("content_type") or "").split(";")[0].strip().lower()
    if ctype:
        return ctype.startswith("image/")
    name = str(attachment.get("filename") or "").lower()
    return name.endswith(IMAGE_EXTENSIONS)


def image_attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in message.get("attachments") or [] if is_image(a)]


def image_refs(attachments: list[dict[str, Any]], *, max_bytes: int) -> list[ImageRef]:
    """Check each attachment is an image under the size cap, before anything is fetched."""
    if len(attachments) > MAX_REFERENCES:
        raise BadInput(words.too_many_images(len(attachments), MAX_REFERENCES))
    refs = []
    for att in attachments:
        name = str(att.get("filename") or words.AN_ATTACHMENT)
        if not is_image(att):
            ctype = str(att.get("content_type") or words.UNKNOWN_TYPE).split(";")[0]
            raise BadInput(words.not_an_image(name, ctype))
        size = int(att.get("size") or 0)
        if size > max_bytes:
            raise BadInput(words.image_too_large(name, size, max_bytes))
        refs.append(ImageRef(url=str(att["url"]), filename=name))
    return refs


def slash_request(payload: dict[str, Any], *, origin: dict[str, Any], max_bytes: int) -> ChatRequest:
    """/hidream with its typed options and up to four attachments."""
    opts = options_of(payload)
    return _slash_one(payload, opts, str(opts.get("prompt") or ""), origin, max_bytes)[0]


def slash_set(
    payload: dict[str, Any], *, origin: dict[str, Any], max_bytes: int
) -> tuple[list[ChatRequest], bool]:
    """/hidream as the jobs it asks for (`{a, b}` choices in the prompt, `--repeat`), and whether the
    person confirmed a large set already (`--yes`)."""
    opts = options_of(payload)
    chats: list[ChatRequest] = []
    confirmed = False
    for text in expand_choices(str(opts.get("prompt") or "")):
        chat, values = _slash_one(payload, opts, text, origin, max_bytes)
        confirmed = confirmed or "yes" in values
        repeat = int(values.get("repeat", "1"))
        chats += [chat.model_copy(update={"request": repeated(chat.request, k)}) for k in range(repeat)]
    if len(chats) > SET_MAX:
        raise BadInput(words.set_too_large(len(chats), SET_MAX))
    return chats, confirmed


def _slash_one(
    payload: dict[str, Any], opts: dict[str, Any], prompt: str, origin: dict[str, Any], max_bytes: int
) -> tuple[ChatRequest, dict[str, str]]:
    """One job of /hidream: the prompt text (one choice of a set) with the typed options; the flag
    values it was built from."""
    # Flags and URLs typed into the prompt count as everywhere else; a typed option wins over the
    # same flag written in the prompt.
    typed = split_command(prompt)
    values = dict(typed.values)
    for option, flag in OPTION_FLAGS.items():
        if option in opts and opts[option] is not None:
            raw = opts[option]
            values[flag] = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
    if "ar" in values and "size" in values and ("ar" in typed.values) != ("size" in typed.values):
        values.pop("ar" if "ar" in typed.values else "size")  # the option chose the other one
    subjects = typed.subjects + str(opts.get("subject") or "").replace(",", " ").split()
    request = build_request(" ".join(typed.words), values, subjects)
    resolved = ((payload.get("data") or {}).get("resolved") or {}).get("attachments") or {}
    chosen = [str(opts[name]) for name in ATTACHMENT_OPTIONS if name in opts]
    attachments = [resolved[key] for key in chosen if key in resolved]
    chat = ChatRequest(
        surface=SURFACE,
        user_id=user_id_of(payload),
        workspace_id=workspace_of(payload),
        origin=origin,
        request=request,
        references=image_refs(attachments, max_bytes=max_bytes)
        + [ImageRef(url=u, typed=True) for u in typed.urls],
    )
    return chat, values


def context_target(payload: dict[str, Any]) -> dict[str, Any]:
    """The message a message context-menu command was used on."""
    data = payload.get("data") or {}
    messages = (data.get("resolved") or {}).get("messages") or {}
    target = messages.get(str(data.get("target_id")))
    if target is None:
        raise BadInput(words.WHICH_MESSAGE)
    return dict(target)


def modal_value(payload: dict[str, Any], custom_id: str = INSTRUCTION_FIELD) -> str:
    """A text input's value in a modal submission (rows of components, or a label's component)."""
    found = _modal_field(payload, custom_id)
    return "" if found is None else str(found)


def modal_checked(payload: dict[str, Any], custom_id: str) -> bool:
    """Whether a checkbox (in a label) of a modal submission was ticked: its `value` is a boolean."""
    return _modal_field(payload, custom_id) is True


def _modal_field(payload: dict[str, Any], custom_id: str) -> Any:
    stack: list[Any] = list((payload.get("data") or {}).get("components") or [])
    while stack:
        comp = stack.pop()
        if comp.get("custom_id") == custom_id and "value" in comp:
            return comp["value"]
        stack.extend(comp.get("components") or [])
        if isinstance(comp.get("component"), dict):
            stack.append(comp["component"])
    return None


def make_custom_id(action: str, *parts: str) -> str:
    custom_id = ":".join((CUSTOM_ID_PREFIX, action, *parts))
    if len(custom_id) > 100:
        raise ValueError("custom ids are limited to 100 characters")
    return custom_id


def parse_custom_id(custom_id: str) -> tuple[str, list[str]] | None:
    parts = custom_id.split(":")
    if len(parts) < 3 or parts[0] != CUSTOM_ID_PREFIX:
        return None
    return parts[1], parts[2:]


def strip_mention(content: str, bot_id: str) -> tuple[str, bool]:
    pattern = re.compile(_MENTION_RE.format(bot_id=re.escape(bot_id)))
    stripped, count = pattern.subn(" ", content)
    return " ".join(stripped.split()), count > 0


def read_message(payload: dict[str, Any], bot_id: str) -> MessageAsk | None:
    """A MESSAGE_CREATE payload as a possible request; None for bots, system messages and our own."""
    author = payload.get("author") or {}
    if author.get("bot") or str(author.get("id")) == bot_id or payload.get("webhook_id"):
        return None
    if payload.get("type", 0) not in (0, 19):
        return None
    text, in_content = strip_mention(str(payload.get("content") or ""), bot_id)
    mentioned = in_content or any(str(u.get("id")) == bot_id for u in payload.get("mentions") or [])
    reference = payload.get("message_reference") or {}
    reply_to_id = reference.get("message_id")
    replied_author = str(((payload.get("referenced_message") or {}).get("author") or {}).get("id"))
    if payload.get("type") == 19 and not in_content and replied_author != bot_id:
        # A reply pings the replied-to author by default; only a reply to the bot itself asks the bot.
        mentioned = False
    return MessageAsk(
        message_id=str(payload["id"]),
        channel_id=str(payload["channel_id"]),
        guild_id=str(payload["guild_id"]) if payload.get("guild_id") else None,
        user_id=str(author.get("id")),
        text=text,
        mentioned=mentioned,
        reply_to_id=str(reply_to_id) if reply_to_id else None,
        reply_to=payload.get("referenced_message"),
        reply_to_channel_id=str(reference["channel_id"]) if reference.get("channel_id") else None,
        images=image_attachments(payload),
    )


def text_request(
    text: str,
    *,
    user_id: str,
    workspace_id: str,
    origin: dict[str, Any],
    references: list[ImageRef],
    parent_job_id: str | None = None,
) -> ChatRequest:
    """Free text (an instruction plus optional flags); URLs typed in it are extra references."""
    parsed = parse_command(text)
    typed = [ImageRef(url=url, typed=True) for url in parsed.urls]
    refs = [*references, *typed]
    if len(refs) > MAX_REFERENCES:
        raise BadInput(words.too_many_images(len(refs), MAX_REFERENCES))
    return ChatRequest(
        surface=SURFACE,
        user_id=user_id,
        workspace_id=workspace_id,
        origin=origin,
        request=parsed.request,
        references=refs,
        parent_job_id=parent_job_id,
    )

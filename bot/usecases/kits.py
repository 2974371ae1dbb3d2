"""Style kits as people manage them, on every surface: anyone may list and show the kits of their
server or workspace; its admins save, delete and bind them (`bind` binds the channel asked in). Each
lookup is in the actor's tenant, so another tenant's kit is "not found". Applying a kit to a request
is the engine's (bot/jobs/kits.py)."""

from __future__ import annotations

from bot.jobs.kits import KitBook, describe
from bot.model.errors import BadInput
from bot.usecases.actor import Actor, Reply
from bot.words import (
    KIT_REFUSED,
    KIT_UNBOUND,
    KIT_USAGE,
    KITS_HEADING,
    NO_KITS,
    kit_bound,
    kit_deleted,
    kit_line,
    kit_saved,
    kit_shown,
)

VERBS = ("save", "list", "show", "delete", "bind")
# What `bind` takes to unbind the channel.
UNBIND = ("none", "off", "default")


def _admin(actor: Actor) -> None:
    if not actor.admin:
        raise BadInput(KIT_REFUSED)


async def save(book: KitBook, actor: Actor, name: str, text: str) -> Reply:
    """`text`: the kit's parts as flags (`--prefix ... --suffix ... --no ... --subject ... --ar ...`)."""
    _admin(actor)
    kit = await book.save(actor.tenant, actor.key, name, text)
    return Reply(kit_saved(kit.name, kit.version))


async def listing(book: KitBook, actor: Actor) -> Reply:
    kits = await book.all(actor.tenant)
    bound = await book.bound(actor.tenant, actor.channel_id, actor.home_channel)
    lines = [kit_line(k.name, k.version, bound is not None and bound.key == k.key) for k in kits]
    return Reply("\n".join([KITS_HEADING, *lines]) if lines else NO_KITS)


async def show(book: KitBook, actor: Actor, name: str) -> Reply:
    kit = await book.get(actor.tenant, name)
    return Reply(kit_shown(kit.name, kit.version, describe(kit)))


async def delete(book: KitBook, actor: Actor, name: str) -> Reply:
    _admin(actor)
    kit = await book.delete(actor.tenant, name)
    return Reply(kit_deleted(kit.name))


async def bind(book: KitBook, actor: Actor, name: str) -> Reply:
    """Bind the actor's channel (typed in a thread: the channel it is in, whose threads follow it) to
    the kit `name`; `none` unbinds it."""
    _admin(actor)
    unbind = name.lower() in UNBIND
    if actor.home_channel != actor.channel_id:  # a thread's own binding gives way to its channel's
        await book.bind(actor.tenant, actor.channel_id, None)
    kit = await book.bind(actor.tenant, actor.home_channel, None if unbind else name)
    return Reply(KIT_UNBOUND if kit is None else kit_bound(kit.name))


async def command(book: KitBook, actor: Actor, text: str) -> Reply:
    """`kit <verb> ...` as a surface of text commands takes it: `text` is what follows `kit`."""
    verb, _, rest = text.strip().partition(" ")
    name, _, more = rest.strip().partition(" ")
    verb = verb.lower()
    if verb == "list" and not rest.strip():
        return await listing(book, actor)
    if verb == "save" and name:
        return await save(book, actor, name, more)
    if verb in ("show", "delete", "bind") and name and not more.strip():
        act = {"show": show, "delete": delete, "bind": bind}[verb]
        return await act(book, actor, name)
    raise BadInput(KIT_USAGE)

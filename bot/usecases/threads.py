"""`undo` and `history` in a result thread, on every surface. A thread answers only people of the
tenant whose versions it holds: anyone else is told "not found", as for a thread with none. Who may
undo (the requesters, a moderator or admin) and what undo goes back to are bot/jobs/versions.py's."""

from __future__ import annotations

from bot.jobs.versions import Link, ThreadCommand, Versions
from bot.model.errors import BadInput
from bot.usecases.actor import Actor, Reply
from bot.words import NOT_FOUND


async def thread_command(
    versions: Versions,
    actor: Actor,
    command: ThreadCommand,
    thread_key: str,
    link: Link,
    *,
    from_job: str | None = None,
) -> Reply:
    """Said in the thread for everyone there: undo changes what everyone's next edit starts from.
    Raises BadInput (nothing changed) to refuse."""
    if any(not actor.owns(v.job) for v in await versions.live(actor.surface, thread_key)):
        raise BadInput(NOT_FOUND)
    if command == "history":
        return Reply((await versions.history(actor.surface, thread_key)).text(link), private=False)
    undone = await versions.undo(
        actor.surface,
        thread_key,
        actor.user_id,
        admin=actor.admin or actor.moderator,
        from_job=from_job,
    )
    return Reply(undone.text(link), private=False)

"""The one error boundary of the Slack listeners, in the way bolt's `app.error` works: a listener
only raises, and the boundary answers. A UserFacingError is told privately to the person who acted
(its `user_message`); anything else is logged with its traceback and answered with a plain apology.

Each listener says where a private answer goes (`reply_to`): the slash command's response_url, or
an ephemeral message to the person in the channel and thread they acted in. The boundary adds
nothing before the listener runs, so every listener still acks first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.model.errors import UserFacingError
from bot.words import SORRY

log = logging.getLogger(__name__)


H = TypeVar("H")
P = ParamSpec("P")
Reply = Callable[[str], Awaitable[object]]
# Given the listener's owner and the arguments bolt passed it (always by keyword), where to answer.
ReplyTo = Callable[[H, Mapping[str, Any]], Reply]
Listener = Callable[Concatenate[H, P], Awaitable[None]]


def guarded(reply_to: ReplyTo[H]) -> Callable[[Listener[H, P]], Listener[H, P]]:
    def decorate(listener: Listener[H, P]) -> Listener[H, P]:
        # functools.wraps keeps the listener's signature visible to bolt, which passes only the
        # arguments a listener names (ack, body, respond, ...).
        @functools.wraps(listener)
        async def boundary(owner: H, /, *args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await listener(owner, *args, **kwargs)
            except UserFacingError as exc:
                await reply_to(owner, kwargs)(exc.user_message)
            except Exception:
                log.exception("slack: %s failed", listener.__name__)
                await reply_to(owner, kwargs)(SORRY)

        return boundary

    return decorate

"""Fakes served from a thread of their own, so that `bot.cli.main` can run the bot in the test's thread.

`main()` owns its event loop (`asyncio.run`), so the platforms it talks to cannot share it: they run
in a second loop on a daemon thread, and the test hands that loop coroutines to run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    """An event loop on a daemon thread; `run` waits for a coroutine there, `submit` does not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fakes", daemon=True)
        self._stack = AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def enter(self, context: AbstractAsyncContextManager[T]) -> T:
        """Enter an async context manager (a fake) in the background loop, until this Background closes."""
        return self.run(self._stack.enter_async_context(context))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def background() -> Iterator[Background]:
    bg = Background()
    bg.start()
    try:
        yield bg
    finally:
        bg.close()


def _stop_now() -> bool:
    handler = signal.getsignal(signal.SIGTERM)
    if getattr(handler, "__module__", None) != "asyncio.unix_events":
        return False
    os.kill(os.getpid(), signal.SIGTERM)
    return True


async def stop_the_running_bot(within: float = 60.0) -> None:
    """What an operator's `kill` does to `hidream-bot run`: SIGTERM to this process.

    Sent only while the bot's loop has its handler installed (asyncio's, not the default, which would end
    the test run); if the bot is still starting, this waits for that, at most `within` seconds."""
    deadline = time.monotonic() + within
    # Nothing announces the handler: it is looked at again, briefly, until it is there or time is up.
    while not _stop_now() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)

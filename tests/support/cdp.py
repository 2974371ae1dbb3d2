"""A headless Chromium driven over the DevTools protocol with aiohttp's websocket client.

Why not Playwright: the tests need a handful of commands (navigate, evaluate, resize, screenshot), and
aiohttp is already a dependency; Playwright would add a Node driver and a lock entry for them. The
browser is Debian's `chromium` package (no downloaded browser build).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path(os.environ.get("HIDREAM_TEST_CHROMIUM", "/usr/bin/chromium"))
# Quiet and offline: no first-run pages, no update checks, no sync or metrics calls to the internet.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--remote-debugging-port=0",
)


class Browser:
    """`async with Browser(profile_dir) as page:` one tab; `page.call(method, **params)`.

    The browser it starts is always stopped: on leaving the block, and also when it fails to start, never
    writes its port, or cannot be reached (then entering raises and nothing of it is left running).
    Chromium runs in a process group of its own, and that whole group is ended: its helper processes
    (zygote, renderers) go with it even if the main process died first.
    """

    def __init__(
        self,
        profile: Path,
        *,
        executable: Path | None = None,
        flags: tuple[str, ...] = FLAGS,
        start_timeout: float = 60,
    ) -> None:
        self.profile = profile
        self.executable = executable or CHROMIUM
        self.flags = flags
        self.start_timeout = start_timeout
        self.events: list[dict[str, Any]] = []
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The browser's process id (also its process group's), once started."""
        return None if self._proc is None else self._proc.pid

    async def __aenter__(self) -> Browser:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            str(self.executable),
            *self.flags,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ended whole by close()
        )
        port = await self._port()
        self._http = aiohttp.ClientSession()
        async with asyncio.timeout(self.start_timeout):
            async with self._http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            page = next((t for t in targets if t["type"] == "page"), None)
            if page is None:
                raise RuntimeError(f"chromium has no page to drive: {targets}")
            self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _port(self) -> int:
        """Chromium writes the port it chose into the profile once it listens."""
        active = self.profile / "DevToolsActivePort"
        try:
            async with asyncio.timeout(self.start_timeout):
                while not (active.exists() and active.read_text().strip()):
                    assert self._proc is not None
                    if self._proc.returncode is not None:
                        raise RuntimeError(f"chromium exited at start with status {self._proc.returncode}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise RuntimeError(
                f"chromium wrote no DevTools port into {active} in {self.start_timeout:g} s"
            ) from None
        return int(active.read_text().split()[0])

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Everything this browser holds, in reverse: the reader, the websocket, the HTTP session, and
        the browser's process group (asked to end, then killed after 15 s). Safe to call at any stage."""
        try:
            if self._reader is not None:
                self._reader.cancel()
                with suppress(asyncio.CancelledError):
                    await self._reader
            if self._ws is not None:
                await self._ws.close()
            if self._http is not None:
                await self._http.close()
        finally:
            await self._stop_process()

    async def _stop_process(self) -> None:
        proc = self._proc
        if proc is None:
            return
        group = proc.pid
        _signal_group(group, signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            pass
        # The main process is gone (or stuck): whatever is left of its group is killed outright.
        _signal_group(group, signal.SIGKILL)
        await proc.wait()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        await self._ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        async with asyncio.timeout(60):
            answer = await future
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-like values only)."""
        answer = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def loaded(self, path: str) -> None:
        """Wait until the page at `path` has loaded (after a navigation, a redirect or a form post)."""
        check = f"location.pathname === {json.dumps(path)} && document.readyState === 'complete'"
        async with asyncio.timeout(60):
            while not await self.evaluate(check):  # noqa: ASYNC110 (the browser changes it)
                await asyncio.sleep(0.05)

    async def goto(self, url: str, path: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.loaded(path)

    def statuses(self, url: str) -> list[int]:
        """The HTTP statuses of the documents loaded from `url` (Network.enable must be on)."""
        return [
            int(e["params"]["response"]["status"])
            for e in self.events
            if e.get("method") == "Network.responseReceived" and e["params"]["response"]["url"] == url
        ]

    async def screenshot(self, width: int, *, mobile: bool = False) -> bytes:
        """The whole page (not only the window) at `width` CSS pixels, as PNG. The window is made as
        tall as the page first: a taller capture would otherwise drop the scrollbar and lay it out anew."""
        await self.resize(width, 800, mobile=mobile)
        height = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]["height"]
        await self.resize(width, int(height), mobile=mobile)
        size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = await self.call("Page.captureScreenshot", format="png", clip=clip)
        return base64.b64decode(shot["data"])

    async def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )


def _signal_group(group: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)

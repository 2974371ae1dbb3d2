"""The Discord fake of `make bench`: the real fake, which notes when each upload arrived and then
drops the file's bytes (hundreds of 2 MB images would otherwise pile up in the benchmark's memory)."""

from __future__ import annotations

import itertools
import json
import re
import time

from aiohttp import web

from tests.fakes.discord import API, Call, FakeDiscord

TAG = re.compile(r"r\d+j\d+")


class SinkDiscord(FakeDiscord):
    def __init__(self, session: int) -> None:
        super().__init__()
        # Each bot process of a run gets its own fake, whose snowflakes must not repeat the earlier
        # ones: the bot rightly ignores an interaction id it has already taken.
        self._ids = itertools.count(1_800_000_000_000_000_000 + session * 10_000_000)
        self.uploaded_at: dict[str, float] = {}  # prompt tag -> when its image was received
        self.uploaded_bytes = 0
        # The network profile: the bot's REST calls (uploads included) go through a proxy at a real
        # network's pace (tests/fakes/netem.py), whose base URL this is; the gateway stays direct.
        self.front = ""

    @property
    def api_url(self) -> str:
        return (self.front or self.base_url) + API

    async def _record(self, request: web.Request) -> Call:
        call = await super()._record(request)
        if call.files:
            now = time.monotonic()
            found = TAG.search(json.dumps(call.body))
            if found is not None:
                self.uploaded_at.setdefault(found.group(0), now)
            self.uploaded_bytes += sum(len(f[1]) for f in call.files)
            call.files = [(name, b"", ctype) for name, _, ctype in call.files]
        return call

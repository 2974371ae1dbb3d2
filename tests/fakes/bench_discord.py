"""The Discord fake of `make bench`: the real fake, which notes when each upload arrived and then
drops the file's bytes (hundreds of 2 MB images would otherwise pile up in the benchmark's memory).

It also answers every REST call with Discord's rate-limit headers (X-RateLimit-Limit, -Remaining,
-Reset, -Reset-After, -Bucket, as Discord's API documents them), for buckets far wider than Discord's
own: a server whose limits are not what bounds the burst. Without them discord.py takes each route
and channel (a bucket) as allowing one request at a time, so every job's thread, all made in the
benchmark's one channel, waited for the one before; under the network profile (a 50 ms round trip
each) that alone held the burst near 17 jobs a second. Real Discord's buckets are narrower (a few
requests a second per channel for some routes): a burst in one channel there is bounded by Discord."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time

from aiohttp import web

from tests.fakes.discord import API, Call, FakeDiscord

TAG = re.compile(r"r\d+j\d+")
# The width of every bucket, a second at a time.
BUCKET_LIMIT = 10_000
_SNOWFLAKE = re.compile(r"\d{15,}")


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

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        response = await super()._rest(request)
        route = _SNOWFLAKE.sub("{id}", f"{request.method} {request.path}")
        response.headers.update(
            {
                "X-RateLimit-Limit": str(BUCKET_LIMIT),
                "X-RateLimit-Remaining": str(BUCKET_LIMIT - 1),
                "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                "X-RateLimit-Reset-After": "1.000",
                "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:16],
            }
        )
        return response

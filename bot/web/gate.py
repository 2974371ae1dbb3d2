"""Who is knocking, and how often they got the operators' token wrong: the sign-in limits shared by
/admin (form and bearer) and /metrics.

A correct token always gets in, whatever came before: a limit that also turned the right token away
would let anyone who can reach the server (or share an address with the operator behind a proxy)
keep the operators out. So limits apply to wrong tokens only, counted two ways within a window:
per address (an IPv6 address by its /64, which one host usually holds whole) and per guessed token
(one wrong token tried from many addresses). A wrong token over either limit is answered 429, with
no log line. What keeps the token itself out of reach of guessing is its length (at least 16
characters, checked at start); the limits keep the noise of guessing bounded and answer it plainly.

The address is the connection's peer, unless the peer is one of HIDREAM_TRUSTED_PROXIES: then it is
read from `X-Forwarded-For`, right to left, skipping the trusted proxies' own hops. A client can put
anything in that header, so without a trusted proxy it is never read.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from aiohttp import web

from bot.model.config import IPNetwork

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Verdict(NamedTuple):
    outcome: Literal["in", "wrong", "limited"]
    retry_after: int = 0  # seconds, when limited


FAILURES_ALLOWED = 10
FAILURE_WINDOW = 300.0
# Addresses and guesses remembered at once: a flood of distinct ones forgets the oldest, so memory
# stays bounded (about 1 KB each).
REMEMBERED = 20_000


def parse_ip(text: str) -> IPAddress | None:
    """An address as a peer or a proxy writes it, IPv4-mapped IPv6 read as IPv4; None if it is none."""
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(peer: str | None, forwarded: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The address of whoever sent a request that arrived from `peer` with these `X-Forwarded-For`
    header values."""
    ip = parse_ip(peer or "")
    if ip is None:
        return peer or "?"
    hops = [hop for value in forwarded for hop in value.split(",")]
    while any(ip in network for network in trusted) and hops:
        # Each proxy appends the address it saw: the rightmost hop that is not a trusted proxy is
        # the client. A hop that is no address was not written by a proxy we trust: stop there.
        nearer = parse_ip(hops.pop())
        if nearer is None:
            break
        ip = nearer
    return str(ip)


class FailureCounts:
    """Recent failures per key within a sliding window, for at most `remembered` keys."""

    def __init__(self, allowed: int, window: float, clock: Callable[[], float], remembered: int) -> None:
        self.allowed, self.window, self.clock, self.remembered = allowed, window, clock, remembered
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until `key` may fail again; 0 when it is under the limit."""
        recent = self._recent.get(key)
        if recent is None:
            return 0.0
        now = self.clock()
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._recent[key]
            return 0.0
        return recent[0] + self.window - now if len(recent) >= self.allowed else 0.0

    def fail(self, key: str) -> None:
        recent = self._recent.setdefault(key, deque(maxlen=self.allowed))
        recent.append(self.clock())
        self._recent.move_to_end(key)
        while len(self._recent) > self.remembered:
            self._recent.popitem(last=False)


class SignInGate:
    """Checks a given token against the operators' token, with the limits above; one per server, so
    a wrong guess costs the same at /admin and /metrics."""

    def __init__(
        self,
        trusted: Sequence[IPNetwork] = (),
        *,
        clock: Callable[[], float] = time.time,
        allowed: int = FAILURES_ALLOWED,
        window: float = FAILURE_WINDOW,
    ) -> None:
        self.trusted = tuple(trusted)
        self.counts = FailureCounts(allowed, window, clock, REMEMBERED)
        # Guesses are remembered by a keyed digest, never as given.
        self._pepper = secrets.token_bytes(16)

    def address(self, request: web.Request) -> str:
        return client_address(request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted)

    def check(self, request: web.Request, given: bytes, token: bytes, *, where: str) -> Verdict:
        """Whether `given` is `token`; a wrong one is counted, or refused as over the limit."""
        # Compared in constant time, and always: the right token is never turned away.
        if hmac.compare_digest(given, token):
            return Verdict("in")
        address = self.address(request)
        guess = hmac.new(self._pepper, given, "sha256").hexdigest()
        keys = ("address " + limit_key(address), "guess " + guess)
        wait = max(self.counts.wait(key) for key in keys)
        if wait > 0:
            return Verdict("limited", max(1, math.ceil(wait)))
        for key in keys:
            self.counts.fail(key)
        log.warning("%s: a wrong operators' token from %s", where, address)
        return Verdict("wrong")


def bearer_token(request: web.Request) -> bytes | None:
    """The token of an `Authorization: Bearer` header; None when the request sends none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip().encode() if scheme.lower() == "bearer" else None


def limit_key(address: str) -> str:
    """What the per-address limit counts by: an IPv6 address by its /64."""
    ip = parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return address

"""A provider's Ed25519 webhook keys, read from its JWKS (RFC 7517, keys per RFC 8037).

Shared by the providers that sign their callbacks with keys they publish; each names itself as
`owner` for the log and for what the requester may be told.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.model.errors import CallbackRejected

log = logging.getLogger(__name__)

# Keys are rotated rarely; a day-old copy is refreshed, and an unknown signer triggers a refetch,
# but no more often than this so forged callbacks cannot make us hammer the JWKS endpoint.
JWKS_MAX_AGE_S = 24 * 3600
JWKS_REFETCH_MIN_S = 30
# After a failed fetch the next waits 30 s, then 60, 120... at most this long.
JWKS_BACKOFF_MAX_S = 15 * 60

# A published key: its id (`kid`, when the JWKS gives one) and the key.
Jwk = tuple[str | None, Ed25519PublicKey]


class JwksCache:
    """A provider's Ed25519 public keys, fetched once, refreshed daily and when a signer is unknown.

    Fetches are spaced: at least JWKS_REFETCH_MIN_S after a success, and after failures a backoff
    that doubles each time (up to JWKS_BACKOFF_MAX_S), so a failing endpoint is not asked again on
    every callback. Meanwhile the keys already held keep verifying."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, clock: Callable[[], float], *, owner: str
    ) -> None:
        self._client = client
        self._url = url
        self._clock = clock
        self._owner = owner
        self._keys: list[Jwk] = []
        self._fetched_at: float | None = None  # the last successful fetch
        self._next_fetch_at = float("-inf")
        self._failures = 0  # fetches failed in a row
        self._lock = asyncio.Lock()

    async def verify(self, signature: bytes, message: bytes, key_id: str | None = None) -> bool:
        """True when a published key verifies `signature` over `message`. With `key_id`, only the key
        of that id is tried, and only an id not held yet is cause to fetch the keys again; without it,
        any key may have signed, and a signature no key verifies is."""
        if self._fetched_at is None or self._clock() - self._fetched_at > JWKS_MAX_AGE_S:
            await self._refresh()
        if self._verifies(signature, message, key_id):
            return True
        if key_id is not None and self._holds(key_id):
            return False  # a key we hold did not sign it: a newer copy of the same key will not either
        # The provider may have rotated its key since we last looked; ask again, within bounds.
        await self._refresh()
        if self._verifies(signature, message, key_id):
            return True
        if self._failures and (key_id is None or not self._holds(key_id)):
            # 503: the provider retries the callback later, when the keys may be reachable again.
            raise CallbackRejected(f"{self._owner}'s signing keys could not be fetched", status=503)
        return False

    def _holds(self, key_id: str) -> bool:
        return any(kid == key_id for kid, _ in self._keys)

    def _verifies(self, signature: bytes, message: bytes, key_id: str | None) -> bool:
        keys = [key for kid, key in self._keys if key_id is None or kid in (key_id, None)]
        return _any_verifies(keys, signature, message)

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if now < self._next_fetch_at:
                return  # fetched (or failed) too recently; another callback may have just done it
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                keys = parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                self._failures += 1
                backoff = min(JWKS_BACKOFF_MAX_S, JWKS_REFETCH_MIN_S * 2 ** (self._failures - 1))
                self._next_fetch_at = now + backoff
                log.warning(
                    "could not fetch %s's JWKS from %s: %s; next try in %d s",
                    self._owner,
                    self._url,
                    type(exc).__name__,
                    backoff,
                )
                return
            self._keys, self._fetched_at, self._failures = keys, now, 0
            self._next_fetch_at = now + JWKS_REFETCH_MIN_S


def parse_jwks(document: object) -> list[Jwk]:
    """The Ed25519 keys of a JWKS document (RFC 8037 OKP keys) with their ids; others are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: list[Jwk] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        kid = jwk.get("kid")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append((kid if isinstance(kid, str) else None, Ed25519PublicKey.from_public_bytes(raw)))
        except (ValueError, binascii.Error):
            log.warning("skipping an unreadable key in a JWKS")
    return keys


def _any_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def b64url_decode(text: str) -> bytes:
    """Base64url with or without its padding (JWKs and signatures are sent without); ValueError else."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None

"""Secrets the bot keeps in its database (installation tokens), sealed with the operator's key.

Fernet (AES-128-CBC with an HMAC-SHA256, from the `cryptography` library): a sealed value cannot be
read or altered without the key. A sealed value is stored as `fernet:<token>`, so a plain value left
by an earlier release is told apart from a sealed one without trying keys on it.

Changing keys: the new key goes in HIDREAM_SECRET_KEY and the one before in HIDREAM_SECRET_KEY_OLD for
one start; that start seals every stored value under the new key (`Sealer.reseal`), after which the
old key opens nothing and may be dropped.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.model.errors import ConfigError

KEY = "HIDREAM_SECRET_KEY"
OLD_KEY = "HIDREAM_SECRET_KEY_OLD"
# A Fernet key is 32 random bytes in URL-safe base64; this prints one with nothing but openssl.
MAKE_KEY = "openssl rand -base64 32 | tr '+/' '-_'"
PREFIX = "fernet:"


def key_problem(value: str) -> str | None:
    """Why `value` is not a key (never quoting it); None when it is one."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        return f"must be 32 bytes in URL-safe base64 (44 characters); make one with: {MAKE_KEY}"
    return None


class Sealer:
    """Seals values under `key`; opens values sealed under `key` or, while keys change, `old`."""

    def __init__(self, key: str, old: str = "") -> None:
        self._current = Fernet(key)
        self._keys = MultiFernet([self._current, *([Fernet(old)] if old else [])])
        self._rotating = bool(old)

    def seal(self, plain: str) -> str:
        return PREFIX + self._current.encrypt(plain.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        """The plain value of a stored one; a plain value (an earlier release's row) as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._keys.decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode()
        except InvalidToken:
            raise self._wrong_key() from None

    def reseal(self, stored: str) -> str | None:
        """What to store instead of `stored` so that it is sealed under the current key; None when it
        is already. A value no key opens is a ConfigError naming the variable(s)."""
        if not is_sealed(stored):
            return self.seal(stored)
        token = stored.removeprefix(PREFIX).encode("ascii")
        try:
            self._current.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return PREFIX + self._keys.rotate(token).decode("ascii")
        except InvalidToken:
            raise self._wrong_key() from None

    def _wrong_key(self) -> ConfigError:
        if self._rotating:
            return ConfigError(
                f"{KEY}, {OLD_KEY}: neither key opens the secrets in the database; "
                f"{OLD_KEY} must be the key they were sealed with"
            )
        return ConfigError(
            f"{KEY}: the secrets in the database were sealed with another key; set the key they were "
            f"sealed with (to change keys, set the new one here and the one before as {OLD_KEY} for one start)"
        )


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def sealer(key: str, old: str = "") -> Sealer:
    """The sealer for the operator's keys; a ConfigError naming the variable when none is set."""
    if not key:
        later = f" ({OLD_KEY} is only read beside it, while keys change)" if old else ""
        raise ConfigError(
            f"{KEY} is not set: installation tokens are kept in the database sealed with it, so the bot "
            f"does not take installs without one{later}; make a key with: {MAKE_KEY}"
        )
    return Sealer(key, old)

"""Keys for the tests of installation tokens sealed at rest (fixed, so a failure is reproducible)."""

from __future__ import annotations

import base64

from bot.model.secrets import Sealer


def key_of(letter: str) -> str:
    """A valid key made of one repeated byte: 32 bytes in URL-safe base64."""
    return base64.urlsafe_b64encode(letter.encode() * 32).decode()


KEY = key_of("k")
NEW_KEY = key_of("n")
SEALER = Sealer(KEY)

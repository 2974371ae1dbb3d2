"""Banned phrases matched as people see them, not as they are encoded.

A prompt and a banned phrase are both brought to one plain form before matching: Unicode NFKC
(fullwidth, mathematical and circled letters become plain ones), invisible and format characters
dropped (zero-width space and joiners, soft hyphen, word joiner, bidi controls, tag characters),
accents and other combining marks dropped, case folded, and letters that look like Latin ones
(Cyrillic, Greek, Armenian, small capitals) read as those. Words are runs of letters and digits;
anything else (spaces, `-`, `_`, `.`) separates them. Letters spelled out one at a time
(`n-u-d-e`, `n u d e`, `n.u.d.e`) may form a word. Matching stays whole-word: a ban on "sex"
leaves "Sussex" alone, and one on "rapist" leaves "therapist".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Characters that render as blank space without being Unicode spaces (Hangul fillers, braille blank).
_BLANKS = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u2800"), " ")

# Capitals that look like Latin ones, read before case folding: Greek Η is H, though its small η is n.
_CAPITALS = str.maketrans(
    {
        # Cyrillic
        "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
        "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Һ": "h", "Ԁ": "d", "Ԛ": "q", "Ԝ": "w",
        # Greek
        "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
        "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
    }
)  # fmt: skip
# Look-alikes of Latin letters, after case folding (so lower case only). Sources: the Unicode
# confusables list (UTS #39) for Cyrillic, Greek and Armenian, and the small-capital letters.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h",
        "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ь": "b", "п": "n", "г": "r", "и": "u",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ς": "s",
        # Armenian
        "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "զ": "q",
        # Latin small capitals and other look-alikes the normal forms leave alone
        "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ғ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i",
        "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s",
        "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i", "ȷ": "j", "ɑ": "a",
    }
)  # fmt: skip

_WORD = re.compile(r"[^\W_]+")
# In the plain form of a prompt: words are separated by " ", except two letters spelled out one at
# a time, which are separated by this mark, so a banned word may be read across them.
_SPELLED = "\u00b7"


def plain(text: str) -> str:
    """`text` as it reads: normal form, no invisible characters or marks, folded, look-alikes mapped."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf").translate(_BLANKS)
    text = _unmarked(text).translate(_CAPITALS)
    # Folding can bring marks back (İ folds to i and a dot above): drop them again.
    return _unmarked(text.casefold()).translate(_LOOKALIKES)


def _unmarked(text: str) -> str:
    """`text` without accents and other combining marks (also those stacked as strike-through)."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    )


def words(text: str) -> list[str]:
    return _WORD.findall(plain(text))


def _prompt_form(prompt: str) -> str:
    """The prompt's words, one space apart, or the spelled-out mark between two single letters."""
    found = words(prompt)
    out: list[str] = []
    for i, word in enumerate(found):
        if i:
            out.append(_SPELLED if len(word) == 1 and len(found[i - 1]) == 1 else " ")
        out.append(word)
    return "".join(out)


@lru_cache(maxsize=1024)
def _pattern(phrase: str) -> re.Pattern[str] | None:
    """A banned phrase as a whole-word pattern over `_prompt_form`; each of its words may also be
    spelled out, and its words may be parted by a space or the spelled-out mark."""
    parts = words(phrase)
    if not parts:
        return None
    spelled = f"{_SPELLED}?"
    body = f"[ {_SPELLED}]".join(spelled.join(re.escape(ch) for ch in word) for word in parts)
    return re.compile(rf"(?<![^ {_SPELLED}]){body}(?![^ {_SPELLED}])")


def contains_banned(prompt: str, banned: tuple[str, ...]) -> bool:
    """True when `prompt` holds one of the `banned` phrases as whole words, however it is written."""
    form = _prompt_form(prompt)
    for phrase in banned:
        pattern = _pattern(phrase)
        if pattern is not None and pattern.search(form):
            return True
    return False

"""A measurable test for garbled text: the share of characters no real text contains.

Counted as bad: the Unicode replacement character U+FFFD (what undecodable bytes become),
control characters other than tab, newline and carriage return (category Cc), unassigned
code points (Cn), private-use characters (Co) and lone surrogates (Cs). Binary files read as
text, broken encodings and extraction failures score far above a few percent; real prose and
code in any script score 0. Mojibake that decodes to valid letters (like "Ã©") is not caught.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

DEFAULT_MAX_BAD_SHARE = 0.05
_BAD_ASCII = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # controls other than \t \n \f \r
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_BAD_CATEGORIES = frozenset({"Cc", "Cn", "Co", "Cs"})


@dataclass(frozen=True)
class Garbling:
    bad_characters: int
    characters: int

    @property
    def share(self) -> float:
        return self.bad_characters / self.characters if self.characters else 0.0


def measure_garbling(text: str) -> Garbling:
    # Regular expressions find the candidates in C; each distinct non-ASCII character is
    # looked up once, so this runs at tens of megabytes a second in any script.
    bad = len(_BAD_ASCII.findall(text))
    for char, count in Counter(_NON_ASCII.findall(text)).items():
        if char == "\ufffd" or unicodedata.category(char) in _BAD_CATEGORIES:
            bad += count
    return Garbling(bad, len(text))


def is_garbled(text: str, max_bad_share: float = DEFAULT_MAX_BAD_SHARE) -> bool:
    return measure_garbling(text).share > max_bad_share

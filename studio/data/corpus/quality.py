"""Quality filters of the Gopher / C4 kind, applied to each record of prose.

Each filter has a name (the drop reason in the report) and a threshold in `PrepareSettings`.
Source code is only checked for length and garbling: its symbols, short lines and
repetition are normal. Text in scripts written without spaces (Chinese, Japanese, Thai) skips
the word-based filters, which would misread a whole sentence as one long word.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.data.corpus.dedup import rolling_hashes, token_ids
from studio.data.corpus.settings import PrepareSettings
from studio.data.text_quality import measure_garbling

FILTERS = (
    "too_short", "garbled", "links", "words_per_line", "word_length", "symbols", "bullets",
    "ellipsis", "non_alphabetic", "repetition",
)  # fmt: skip
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_BULLET_LINE = re.compile(r"^[ \t]*[-*•‣◦▪●–][ \t]", re.M)
_ELLIPSIS_LINE = re.compile(r"(?:\.\.\.|…)[ \t]*$", re.M)
_HEADING_MARK = re.compile(r"^#{1,6}\s", re.M)
_MARKUP_TOKEN = re.compile(r"[|#*>\-=_:+`~]+")
_LETTER = re.compile(r"[^\W\d_]")
_SPACE = re.compile(r"\s")
# Thai, Lao, Myanmar, Khmer, kana, CJK ideographs: scripts written without spaces.
_UNSPACED_LETTER = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)


@dataclass(frozen=True)
class Problem:
    filter: str
    detail: str


def quality_problem(text: str, kind: str, settings: PrepareSettings) -> Problem | None:
    """The first filter `text` fails, or None when it passes them all."""
    if len(text) < settings.min_chars:
        return Problem("too_short", f"{len(text)} characters, fewer than {settings.min_chars}")
    garbling = measure_garbling(text)
    if garbling.share > settings.max_garbled:
        return Problem(
            "garbled",
            f"{garbling.share:.0%} of characters are replacement, control or unassigned "
            f"characters (limit {settings.max_garbled:.0%})",
        )
    if kind == "source":
        return None
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not _spaced_script(text):
        return _repetition(text, lines, None, settings)
    words = list(itertools.filterfalse(_MARKUP_TOKEN.fullmatch, text.split()))
    checks: list[Callable[[], Problem | None]] = [
        lambda: _too_few_words(words, settings),
        lambda: _links(text, settings),
        lambda: _words_per_line(words, lines, settings),
        lambda: _word_length(words, settings),
        lambda: _symbols(text, words, settings),
        lambda: _line_shares(text, lines, settings),
        lambda: _alphabetic(words, settings),
        lambda: _repetition(text, lines, words, settings),
    ]
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


def _spaced_script(text: str) -> bool:
    sample = text[:2000]
    visible = len(sample) - len(_SPACE.findall(sample))
    return not visible or len(_UNSPACED_LETTER.findall(sample)) / visible < 0.3


def _too_few_words(words: list[str], settings: PrepareSettings) -> Problem | None:
    if len(words) < settings.min_words:
        return Problem("too_short", f"{len(words)} words, fewer than {settings.min_words}")
    return None


def _words_per_line(
    words: list[str], lines: list[str], settings: PrepareSettings
) -> Problem | None:
    mean = len(words) / max(len(lines), 1)
    if mean < settings.min_mean_words_per_line:
        return Problem(
            "words_per_line",
            f"{mean:.1f} words per line on average over {len(lines)} lines, fewer than "
            f"{settings.min_mean_words_per_line:g} (a menu or list of links)",
        )
    return None


def _word_length(words: list[str], settings: PrepareSettings) -> Problem | None:
    mean = sum(map(len, words)) / max(len(words), 1)
    low, high = settings.min_mean_word_length, settings.max_mean_word_length
    if not low <= mean <= high:
        return Problem("word_length", f"mean word length {mean:.1f}, outside {low:g}..{high:g}")
    return None


def _symbols(text: str, words: list[str], settings: PrepareSettings) -> Problem | None:
    body = _HEADING_MARK.sub("", text)
    symbols = body.count("#") + body.count("...") + body.count("…")
    ratio = symbols / max(len(words), 1)
    if ratio > settings.max_symbol_word_ratio:
        return Problem(
            "symbols",
            f"{ratio:.2f} '#' or '...' per word, more than {settings.max_symbol_word_ratio:g}",
        )
    return None


def _line_shares(text: str, lines: list[str], settings: PrepareSettings) -> Problem | None:
    count = max(len(lines), 1)
    bullets = len(_BULLET_LINE.findall(text)) / count
    if bullets > settings.max_bullet_line_share:
        return Problem(
            "bullets",
            f"{bullets:.0%} of lines start with a bullet (limit "
            f"{settings.max_bullet_line_share:.0%})",
        )
    ellipsis = len(_ELLIPSIS_LINE.findall(text)) / count
    if ellipsis > settings.max_ellipsis_line_share:
        return Problem(
            "ellipsis",
            f"{ellipsis:.0%} of lines end with '...' (limit "
            f"{settings.max_ellipsis_line_share:.0%})",
        )
    return None


def _alphabetic(words: list[str], settings: PrepareSettings) -> Problem | None:
    share = sum(map(bool, map(_LETTER.search, words))) / max(len(words), 1)
    if share < settings.min_alphabetic_word_share:
        return Problem(
            "non_alphabetic",
            f"{share:.0%} of words contain a letter (at least "
            f"{settings.min_alphabetic_word_share:.0%} needed)",
        )
    return None


def _links(text: str, settings: PrepareSettings) -> Problem | None:
    share = sum(len(match) for match in _URL.findall(text)) / max(len(text), 1)
    if share > settings.max_link_char_share:
        return Problem(
            "links",
            f"{share:.0%} of characters are URLs (limit {settings.max_link_char_share:.0%})",
        )
    return None


def _repetition(
    text: str, lines: list[str], words: list[str] | None, settings: PrepareSettings
) -> Problem | None:
    line_share = _repeated_share(lines)
    if line_share > settings.max_duplicate_line_share:
        return Problem(
            "repetition",
            f"{line_share:.0%} of lines repeat another line (limit "
            f"{settings.max_duplicate_line_share:.0%})",
        )
    paragraphs = [part.strip() for part in text.split("\n\n") if part.strip()]
    paragraph_share = _repeated_share(paragraphs)
    if paragraph_share > settings.max_duplicate_paragraph_share:
        return Problem(
            "repetition",
            f"{paragraph_share:.0%} of paragraphs repeat another (limit "
            f"{settings.max_duplicate_paragraph_share:.0%})",
        )
    if not words:
        return None
    import numpy as np

    lowered = text.lower().split() if len(words) > 1 else words
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    ids = token_ids(lowered)
    characters = int(lengths.sum()) or 1
    ngram_filters = (
        (settings.max_top_ngram_share, _top_ngram_chars,
         "the most frequent {n}-word sequence covers {share:.0%} of the text"),
        (settings.max_duplicate_ngram_share, _duplicate_ngram_chars,
         "{share:.0%} of the text is in repeated {n}-word sequences"),
    )  # fmt: skip
    for limits, covered_chars, detail in ngram_filters:
        for n, limit in sorted(limits.items()):
            share = covered_chars(ids, lengths, n) / characters
            if share > limit:
                return Problem(
                    "repetition", detail.format(n=n, share=share) + f" (limit {limit:.0%})"
                )
    return None


def _repeated_share(parts: list[str]) -> float:
    if not parts:
        return 0.0
    counts = Counter(parts)
    return sum(count - 1 for count in counts.values()) / len(parts)


def _top_ngram_chars(ids: Any, lengths: Any, n: int) -> int:
    """Characters covered by the most frequent n-gram, times its count (when it repeats)."""
    import numpy as np

    if len(ids) < n:
        return 0
    hashes = rolling_hashes(ids, n)
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < 2:
        return 0
    return int(lengths[first[top] : first[top] + n].sum()) * int(counts[top])


def _duplicate_ngram_chars(ids: Any, lengths: Any, n: int) -> int:
    """Characters of the words covered by an n-gram that occurred earlier in the text, each
    word counted once (Gopher's duplicate n-gram fraction), computed with numpy."""
    import numpy as np

    if len(ids) < n:
        return 0
    hashes = rolling_hashes(ids, n)
    repeat = np.ones(len(hashes), dtype=np.int32)
    repeat[np.unique(hashes, return_index=True)[1]] = 0
    covered = np.convolve(repeat, np.ones(n, dtype=np.int32))[: len(ids)] > 0
    return int(lengths[covered].sum())

"""Paragraphs into records of bounded size, from a stream, so memory stays bounded.

A record is whole paragraphs up to `max_chars`; a paragraph longer than that is cut at line
ends, then sentence ends, then spaces. The limit is never exceeded: that is what keeps the memory
of tokenizing a record bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def paragraphs_of(chunks: Iterable[str], max_chars: int) -> Iterator[str]:
    """Paragraphs (text between blank lines) from text arriving in chunks. A run of text with
    no blank line longer than 4 x `max_chars` is cut at a line end, so the buffer stays small."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.replace("\r\n", "\n").replace("\r", "\n")
        parts = _BLANK_LINE.split(buffer)
        buffer = parts.pop()
        yield from (part for part in parts if part.strip())
        if len(buffer) > 4 * max_chars:
            cut = buffer.rfind("\n", 0, 2 * max_chars)
            cut = cut if cut > 0 else 2 * max_chars
            yield buffer[:cut]
            buffer = buffer[cut:].lstrip("\n")
    if buffer.strip():
        yield buffer


def code_blocks(chunks: Iterable[str], max_chars: int) -> Iterator[str]:
    """Source code in blocks of at most `max_chars`, cut after a blank line where one is near,
    else at a line end; joined with "" the blocks give back the file exactly."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.replace("\r\n", "\n").replace("\r", "\n")
        while len(buffer) > max_chars:
            cut = buffer.rfind("\n\n", 0, max_chars)
            if cut < max_chars // 2:
                cut = buffer.rfind("\n", 0, max_chars)
            cut = cut + 1 if cut > 0 else max_chars
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def records_of(paragraphs: Iterable[str], max_chars: int, joiner: str = "\n\n") -> Iterator[str]:
    """Paragraphs packed into records of at most `max_chars` characters. With joiner "" the
    paragraphs are code blocks that keep their own line ends."""
    pending: str | None = None
    current: list[str] = []
    size = 0
    for paragraph in paragraphs:
        pieces = [paragraph] if not joiner else _pieces(paragraph.strip("\n"), max_chars)
        for piece in pieces:
            if current and size + len(joiner) + len(piece) > max_chars:
                if pending is not None:
                    yield pending
                pending = joiner.join(current)
                current, size = [], 0
            current.append(piece)
            size += len(piece) + (len(joiner) if size else 0)
    last = joiner.join(current)
    if pending is not None:
        yield pending
    if last:
        yield last


def _pieces(paragraph: str, max_chars: int) -> Iterator[str]:
    if len(paragraph) <= max_chars:
        if paragraph.strip():
            yield paragraph
        return
    for separator in ("\n", None):
        parts = paragraph.split("\n") if separator else _SENTENCE_END.split(paragraph)
        if len(parts) > 1 and max(len(part) for part in parts) <= max_chars:
            yield from _pack(parts, max_chars, "\n" if separator else " ")
            return
    yield from _pack(_hard_cut(paragraph, max_chars), max_chars, " ")


def _pack(parts: list[str], max_chars: int, joiner: str) -> Iterator[str]:
    current = ""
    for part in parts:
        if current and len(current) + len(joiner) + len(part) > max_chars:
            yield current
            current = ""
        current = f"{current}{joiner}{part}" if current else part
    if current.strip():
        yield current


def _hard_cut(text: str, max_chars: int) -> list[str]:
    parts = []
    while len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        parts.append(text[:cut])
        text = text[cut:].lstrip()
    parts.append(text)
    return parts

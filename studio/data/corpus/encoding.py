"""Bytes to text: byte order marks, UTF-8, UTF-16 without a BOM, then charset detection.

charset-normalizer ranks legacy code pages by how chaotic the decoded text looks; on short
Western text cp1250 and cp1252 often tie and it picks cp1250 ("naïve" becomes "naďve"). A tie
goes to cp1252, the code page most legacy Western files use, unless another candidate reads
as clearly more coherent language. ftfy then repairs mojibake left by an earlier wrong decode
("cafÃ©" -> "café").
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_BYTES = 1 << 16
CHUNK_BYTES = 1 << 20
_TIE_CHAOS = 0.01  # chaos scores this close are a tie
_COHERENCE_MARGIN = 0.1  # a rival must read this much more coherent to beat cp1252
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Encoding:
    name: str
    bom_length: int = 0
    how: str = "utf-8"  # 'byte order mark', 'utf-8', 'utf-16 pattern', 'detected', 'unknown'


def utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' when every other byte is mostly NUL (Latin text in UTF-16)."""
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.6 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.6 and odd_nul < 0.05:
        return "utf-16-be"
    return None


def detect_encoding(sample: bytes) -> Encoding:
    """The encoding of a file from its first bytes."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return Encoding(name, len(bom), "byte order mark")
    utf16 = utf16_without_bom(sample[: SAMPLE_BYTES & ~1])
    if utf16:
        return Encoding(utf16, 0, "utf-16 pattern")
    try:
        sample.decode("utf-8")
        return Encoding("utf-8")
    except UnicodeDecodeError as error:
        # A sample cut in the middle of a character is still UTF-8.
        if error.start >= len(sample) - 3 and error.reason == "unexpected end of data":
            return Encoding("utf-8")
    return Encoding(_legacy_code_page(sample), 0, "detected")


def _legacy_code_page(sample: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return "unknown"
    best = min(match.chaos for match in matches)
    tied = [match for match in matches if match.chaos <= best + _TIE_CHAOS]
    western = next((match for match in tied if match.encoding == "cp1252"), None)
    if western is not None:
        rivals = [match for match in tied if match is not western]
        if all(match.coherence < western.coherence + _COHERENCE_MARGIN for match in rivals):
            return "cp1252"
    return matches[0].encoding


def decode_bytes(data: bytes) -> tuple[str, Encoding]:
    """All of `data` as text (undecodable bytes become U+FFFD, which the garbled check counts)."""
    encoding = detect_encoding(data[:SAMPLE_BYTES])
    if encoding.name == "unknown":
        return data.decode("utf-8", errors="replace"), encoding
    return data[encoding.bom_length :].decode(encoding.name, errors="replace"), encoding


def read_text_chunks(path: Path) -> tuple[Encoding, Iterator[str]]:
    """A text file as decoded chunks of about a megabyte, so a huge file never sits in memory
    whole. The encoding is decided on the first 64 KB."""
    with path.open("rb") as stream:
        sample = stream.read(SAMPLE_BYTES)
    encoding = detect_encoding(sample)
    name = "utf-8" if encoding.name == "unknown" else encoding.name

    def chunks() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(name)(errors="replace")
        with path.open("rb") as stream:
            stream.seek(encoding.bom_length)
            while block := stream.read(CHUNK_BYTES):
                yield decoder.decode(block)
            yield decoder.decode(b"", final=True)

    return encoding, chunks()


def repair_text(text: str) -> str:
    """Mojibake and odd Unicode fixed by ftfy; quotes, widths and HTML entities left alone."""
    import ftfy

    config = ftfy.TextFixerConfig(
        unescape_html=False,
        uncurl_quotes=False,
        fix_character_width=False,
        fix_line_breaks=True,
        explain=False,
    )
    return ftfy.fix_text(text, config)

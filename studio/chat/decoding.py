"""Turn generated token ids into text pieces as they arrive, one token at a time.

Decoding token by token on its own loses spaces (SentencePiece's leading "▁") and splits
multi-byte characters (byte-level BPE emits one UTF-8 byte per token for rare characters).
So each step decodes a short window that starts a few tokens back and emits only what the new
tokens added; a piece ending in an incomplete character is held back until the character is
whole. The pieces concatenate to the decoding of all ids at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

REPLACEMENT = "\ufffd"  # what decode() shows for an incomplete UTF-8 sequence


class IncrementalDecoder:
    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, *, skip_special_tokens: bool = True
    ) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self._prefix = 0  # window start: context for the tokens after `_read`
        self._read = 0  # ids up to here have been emitted as text

    def add(self, ids: list[int]) -> str:
        """Take new ids; return the text they complete (possibly empty)."""
        self.ids.extend(ids)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        return self._advance(final=True)

    @property
    def text(self) -> str:
        return self._decode(self.ids)

    def _advance(self, *, final: bool) -> str:
        if self._read >= len(self.ids):
            return ""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if not final and (len(after) <= len(before) or after.endswith(REPLACEMENT)):
            return ""
        if not after.startswith(before):
            # A tokenizer whose cleanup rewrote earlier text: emit from where they diverge on.
            common = _common_prefix_length(before, after)
            piece = after[common:]
        else:
            piece = after[len(before) :]
        self._prefix, self._read = self._read, len(self.ids)
        return piece

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)


def _common_prefix_length(first: str, second: str) -> int:
    length = 0
    for left, right in zip(first, second, strict=False):
        if left != right:
            break
        length += 1
    return length

"""Tokenize only the part of a long text that training keeps.

A conversation longer than max_length loses its end, yet tokenizing it whole costs time in
proportion to all of it: on the 100k-record alpaca benchmark (tiny tokenizer, max_length 256)
97% of the records are cut and ~40% of the tokens are thrown away. When the tokenizer cannot
let the end of a text change its beginning, the text is tokenized only up to a cut a little
past what is kept, and the first max_length tokens are exactly those of the whole text.

"Cannot" is shown, not hoped for. The cut is at a space between two ASCII letters or digits
(`_SAFE_CUT`), and the shortcut is taken only for tokenizers built of parts that keep the
tokens before such a space independent of what follows it (`can_cut`):
- added (special) tokens without whitespace and without lstrip / rstrip: none can match across
  the space;
- normalizers that work character by character (`_LOCAL_NORMALIZERS`; Unicode normalization
  cannot compose across an ASCII letter and a space), and `Replace` of a plain string that
  cannot span an alphanumeric and a space;
- a pre-tokenizer whose first step always splits at such a space and decides every piece
  before it from the characters before it (`_splits_at_the_space`: GPT-2's byte-level regex,
  Llama 3's and Qwen2's regex, Metaspace, whitespace splitting); later steps work within
  pieces. The model (BPE, WordPiece, Unigram, WordLevel) then tokenizes each piece alone;
- post-processors that add nothing without special tokens and trim each token's own offsets.
Anything else (no pre-tokenizer, as in SentencePiece-BPE tokenizers like Gemma's and Llama 2's,
where BPE runs over the whole text; a custom regex; a precompiled normalizer) is tokenized
whole. tests/engine/test_kept_prefix.py compares the two on such tokenizers and hostile texts.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A cut point: the space of "<ASCII alphanumeric> <ASCII alphanumeric>".
_SAFE_CUT = re.compile(r"[A-Za-z0-9] (?=[A-Za-z0-9])")

# Texts of a batch tokenized whole to learn its characters per token (and kept as they are).
SAMPLE_TEXTS = 8
# The cut goes this much further than the sample says the kept tokens need: a text denser in
# tokens than the sample still reaches max_length, else it is tokenized again whole.
CUT_MARGIN = 1.1

_LOCAL_NORMALIZERS = {
    "NFC",
    "NFD",
    "NFKC",
    "NFKD",
    "Lowercase",
    "Strip",
    "StripAccents",
    "Prepend",
    "BertNormalizer",
    "NMT",
}
# Regexes of pre-tokenizer `Split`s whose pieces end at a space between alphanumerics and are
# decided by the characters before it (the only look-ahead, `\s+(?!\S)`, is in a whitespace
# run, which cannot reach the alphanumeric before the space).
_KNOWN_SPLIT_REGEXES = {
    # Llama 3 (and tiktoken's cl100k)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    # Qwen2 / Qwen2.5 / Qwen3
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
}
_MODELS = {"BPE", "WordPiece", "Unigram", "WordLevel"}
_POST_PROCESSORS = {"TemplateProcessing", "ByteLevel", "RobertaProcessing", "BertProcessing"}


def _state(part: Any) -> dict[str, Any] | None:
    return None if part is None else json.loads(part.__getstate__())


def can_cut(backend: Any) -> bool:
    """Whether texts may be tokenized up to a `_SAFE_CUT` with the same tokens before it as
    whole (see the module docstring). Worked out at each batch (~0.02 ms: the parts' settings,
    not the vocabulary), so a token added to the tokenizer since is taken into account."""
    try:
        model = type(backend.model).__name__
        dropout = getattr(backend.model, "dropout", None)
        normalizer = _state(backend.normalizer)
        pre_tokenizer = _state(backend.pre_tokenizer)
        post_processor = _state(backend.post_processor)
        added = list(backend.get_added_tokens_decoder().values())
    except Exception:  # another tokenizers version or a custom part: tokenize whole
        return False
    return (
        model in _MODELS
        and not dropout  # random merges: nothing to keep equal
        and all(_added_token_is_local(token) for token in added)
        and _normalizer_is_local(normalizer)
        and pre_tokenizer is not None
        and _splits_at_the_space(pre_tokenizer)
        and _post_processor_is_local(post_processor)
    )


def _added_token_is_local(token: Any) -> bool:
    content = str(getattr(token, "content", " "))
    return not (token.lstrip or token.rstrip) and not any(char.isspace() for char in content)


def _normalizer_is_local(state: dict[str, Any] | None) -> bool:
    if state is None:
        return True
    kind = state.get("type")
    if kind == "Sequence":
        return all(_normalizer_is_local(part) for part in state.get("normalizers", []))
    if kind == "Replace":
        pattern = state.get("pattern", {})
        literal = pattern.get("String") if isinstance(pattern, dict) else None
        # A match across the cut would hold an alphanumeric beside the space: a pattern of
        # whitespace only, or with no space, cannot.
        return isinstance(literal, str) and (" " not in literal or not literal.strip())
    return kind in _LOCAL_NORMALIZERS


def _splits_at_the_space(state: dict[str, Any]) -> bool:
    kind = state.get("type")
    if kind == "Sequence":
        steps = state.get("pretokenizers", [])
        # The first step makes the cut a piece boundary; the later ones split within pieces.
        return bool(steps) and _splits_at_the_space(steps[0])
    if kind == "ByteLevel":
        return bool(state.get("use_regex", True))
    if kind == "Metaspace":
        return bool(state.get("split", True))
    if kind in {"Whitespace", "WhitespaceSplit", "BertPreTokenizer"}:
        return True
    if kind == "Split":
        pattern = state.get("pattern", {})
        return (
            isinstance(pattern, dict)
            and pattern.get("Regex") in _KNOWN_SPLIT_REGEXES
            and state.get("behavior") == "Isolated"
            and not state.get("invert", False)
        )
    return False


def _post_processor_is_local(state: dict[str, Any] | None) -> bool:
    if state is None:
        return True
    if state.get("type") == "Sequence":
        return all(_post_processor_is_local(part) for part in state.get("processors", []))
    return state.get("type") in _POST_PROCESSORS


def cut_point(text: str, at_least: int) -> int:
    """The first safe cut at or after `at_least` characters; len(text) when there is none."""
    if len(text) <= at_least:
        return len(text)
    found = _SAFE_CUT.search(text, max(at_least - 1, 0))
    return found.start() + 1 if found else len(text)


def _chars_per_kept_token(text: str, encoding: Any, keep: int) -> float:
    """Characters per token over what the first `keep` + 1 tokens of `text` cover (the part
    a cut must reach: the beginning of a conversation may be denser or sparser than the rest),
    or over the whole text when it has no more tokens or no offsets; 0 with no tokens."""
    tokens = len(encoding)
    if tokens > keep:
        end = encoding.offsets[keep][1]
        if end > 0:  # offsets are all 0 when not tracked
            return end / (keep + 1)
    return len(text) / tokens if tokens else 0.0


def encode_kept(backend: Any, texts: list[str], keep: int, with_offsets: bool) -> list[Any]:
    """The tokenizer's encodings of `texts` (no special tokens added), each whole or of a
    prefix of its text with more than `keep` tokens: the first `keep` tokens (ids and offsets)
    and whether there are more are those of the whole text. `backend` must pass `can_cut`."""
    call = backend.encode_batch if with_offsets else backend.encode_batch_fast
    sample = texts[:SAMPLE_TEXTS]
    encodings = list(call(sample, add_special_tokens=False, is_pretokenized=False))
    if len(texts) == len(sample):
        return encodings
    chars_per_token = max(
        (
            _chars_per_kept_token(text, encoding, keep)
            for text, encoding in zip(sample, encodings, strict=True)
        ),
        default=0.0,
    )
    others = texts[len(sample) :]
    if not chars_per_token:
        return encodings + list(call(others, add_special_tokens=False, is_pretokenized=False))
    at_least = int(chars_per_token * (keep + 1) * CUT_MARGIN) + 1
    cuts = [cut_point(text, at_least) for text in others]
    rest = list(
        call(
            [text[:cut] for text, cut in zip(others, cuts, strict=True)],
            add_special_tokens=False,
            is_pretokenized=False,
        )
    )
    # A prefix that came out short of more than `keep` tokens says nothing about the whole:
    # those texts are tokenized again, whole.
    short = [
        index
        for index, (text, cut, encoding) in enumerate(zip(others, cuts, rest, strict=True))
        if cut < len(text) and len(encoding) <= keep
    ]
    if short:
        whole = call(
            [others[index] for index in short],
            add_special_tokens=False,
            is_pretokenized=False,
        )
        for index, encoding in zip(short, whole, strict=True):
            rest[index] = encoding
    return encodings + rest

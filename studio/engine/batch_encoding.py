"""Encode a batch of records at once: the same ids and labels as `encoding.encode_conversation`
record by record, in a fraction of the time.

What makes it fast, without changing a single label:
- the texts of the whole batch are tokenized in one call (the fast tokenizer's Rust code
  splits the batch over the cores);
- the rendering of a conversation through its last message is the full text already, so a
  conversation ending with the assistant (every alpaca record) costs two renderings, not three;
- the labels come from array comparisons over all of a record's token offsets at once, not a
  Python search of every span for every token.

Each assistant turn still needs the renderings of its own prefix: that is what keeps the
masking exact for any template (some change earlier turns once a later one exists, which a
single rendering cannot see). A conversation of n turns thus renders n prefixes whose lengths
add up to about n/2 times the conversation: fine for chats of tens of turns, and the cost of
exactness for longer ones.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from studio.engine.encoding import (
    IGNORE_INDEX,
    EncodingStats,
    assistant_spans,
    fit_tools_to_template,
    render_conversation,
)
from studio.errors import DataError

Columns = dict[str, list[list[int]]]


def encode_batch(
    tokenizer: Any,
    records: list[dict[str, Any]],
    kind: str,
    max_length: int,
    assistant_only: bool = True,
) -> tuple[Columns, EncodingStats]:
    """{"input_ids", "labels"} columns for `records` (examples with nothing to learn are left
    out and counted), and the statistics of this batch."""
    stats = EncodingStats()
    if kind == "conversation":
        chunks = _conversation_chunks(tokenizer, records, max_length, assistant_only, stats)
    elif kind == "text":
        chunks = _text_chunks(tokenizer, records, max_length, stats)
    else:
        raise DataError(f"records of kind '{kind}' cannot be encoded for causal-LM training")
    columns: Columns = {"input_ids": [], "labels": []}
    for ids, labels in chunks:
        # The first token is never predicted (nothing comes before it), so it is no target.
        targets = len(labels) - 1 - labels[1:].count(IGNORE_INDEX) if labels else 0
        if targets <= 0:
            stats.dropped_no_target += 1
            continue
        columns["input_ids"].append(ids)
        columns["labels"].append(labels)
        stats.examples += 1
        stats.tokens += len(ids)
        stats.target_tokens += targets
    return columns, stats


def _conversation_chunks(
    tokenizer: Any,
    records: list[dict[str, Any]],
    max_length: int,
    assistant_only: bool,
    stats: EncodingStats,
) -> list[tuple[list[int], list[int]]]:
    texts: list[str] = []
    all_spans: list[list[tuple[int, int]]] = []
    for record in records:
        messages, tools = fit_tools_to_template(tokenizer, record["messages"], record.get("tools"))
        text = render_conversation(tokenizer, messages, tools)
        texts.append(text)
        spans = assistant_spans(tokenizer, messages, text, tools) if assistant_only else []
        all_spans.append(spans)
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=assistant_only,
        truncation=False,
        # Not needed, and converting them costs as much as the ids.
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    chunks = []
    for index, ids in enumerate(encoded["input_ids"]):
        ids = list(ids)
        if assistant_only:
            labels = _labels(ids, encoded["offset_mapping"][index], all_spans[index])
        else:
            labels = list(ids)
        if len(ids) > max_length:
            stats.truncated += 1
        chunks.append((ids[:max_length], labels[:max_length]))
    return chunks


def _labels(
    ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[int]:
    """A token is a target when its characters lie wholly inside a span (and it has any):
    `encoding._inside`, for all tokens at once."""
    import numpy as np

    if not spans or not ids:
        return [IGNORE_INDEX] * len(ids)
    # fromiter over the flattened pairs: several times faster than asarray on a list of tuples.
    flat = np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets))
    starts, ends = flat[0::2], flat[1::2]
    inside = np.zeros(len(ids), dtype=bool)
    for low, high in spans:
        inside |= (starts >= low) & (ends <= high)
    inside &= ends > starts
    return np.where(inside, np.asarray(ids, dtype=np.int64), IGNORE_INDEX).tolist()


def _text_chunks(
    tokenizer: Any, records: list[dict[str, Any]], max_length: int, stats: EncodingStats
) -> list[tuple[list[int], list[int]]]:
    encoded = tokenizer(
        [record["text"] for record in records],
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    eos = tokenizer.eos_token_id
    chunks = []
    for ids in encoded["input_ids"]:
        ids = [*ids, eos] if eos is not None else list(ids)
        pieces = [ids[start : start + max_length] for start in range(0, len(ids), max_length)]
        stats.split_documents += len(pieces) > 1
        chunks += [(piece, list(piece)) for piece in pieces]
    return chunks

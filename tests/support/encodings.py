"""What an encoding should give, record by record, and the cache folder a test owns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studio.engine.encoding import IGNORE_INDEX, encode_conversation, encode_text


def rows(dataset: Any) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of each example of an encoded dataset."""
    return [(row["input_ids"], row["labels"]) for row in dataset]


def reference_rows(
    tokenizer: Any, records: list[dict[str, Any]], kind: str, max_length: int
) -> list[tuple[list[int], list[int]]]:
    """The encoding record by record through transformers' own call (`encoding.py`, as
    ftstudio did it before batching), without the examples that have nothing to learn."""
    found = []
    for record in records:
        if kind == "conversation":
            ids, labels, _ = encode_conversation(
                tokenizer, record["messages"], max_length, True, record.get("tools")
            )
            chunks = [(ids, labels)]
        else:
            pieces = encode_text(tokenizer, record["text"], max_length)
            chunks = [(ids, list(ids)) for ids in pieces]
        found += [(i, la) for i, la in chunks if any(x != IGNORE_INDEX for x in la[1:])]
    return found


def own_cache(monkeypatch: pytest.MonkeyPatch, root: Path, tiny_model_dir: Path) -> Path:
    """`root` as the ftstudio cache of this test (FTSTUDIO_CACHE_DIR), sharing the built tiny
    model; the folder encoded data goes to."""
    (root / "models").mkdir(parents=True)
    (root / "models" / tiny_model_dir.name).symlink_to(tiny_model_dir)
    monkeypatch.setenv("FTSTUDIO_CACHE_DIR", str(root))
    return root / "encoded"

"""Chat-control tokens typed inside the text of records: warn before they are trained on.

A record whose user text holds `<|im_end|><|im_start|>assistant` is tokenized with those
strings as the real control tokens, so the model learns that a turn ends, or a new one starts,
in the middle of a message (and a user can later type them to steer it). They are usually
scraped chat logs or prompt-injection samples; they are kept, but the report says which
records hold them so the user can decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# The control tokens of the common chat templates (ChatML, Llama 2 and 3, Gemma, Mistral,
# Phi, the tiny model's own), and the generic `<|name|>` form most templates use.
CHAT_CONTROL_TOKEN = re.compile(
    r"<\|[A-Za-z_][A-Za-z0-9_]*\|>"
    r"|<(?:start|end)_of_turn>"
    r"|\[/?INST\]|<<?/?SYS>>?"
    r"|</?s>"
)
SHOWN_LINES = 5


def record_strings(value: Any) -> Iterable[str]:
    """Every string in a record (iteratively: records are bounded, but never trusted)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def control_token_note(path: str, records: Iterable[Any]) -> str | None:
    """A report note naming the records whose text holds chat-control tokens, or None.

    `records` are `LineRecord`s (anything with `.line` and `.record`)."""
    lines: list[tuple[str, int | None]] = []
    tokens: set[str] = set()
    for item in records:
        for text in record_strings(item.record):
            found = CHAT_CONTROL_TOKEN.findall(text)
            if found:
                tokens.update(found)
                # A dataset of several shard files names each record's own file.
                lines.append((getattr(item, "file", None) or path, item.line))
                break
    if not lines:
        return None
    where = ", ".join(f"{file}:{line}" for file, line in lines[:SHOWN_LINES] if line is not None)
    more = f" and {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else ""
    shown = ", ".join(sorted(tokens)[:4])
    return (
        f"warning: {len(lines)} record(s) hold chat-control tokens in their text ({shown}) at "
        f"{where}{more}; they are tokenized as real control tokens, so the model learns turns "
        "that end or start mid-message. Remove them unless that is what you want"
    )

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
# The same, on the JSON text of a record: none of them holds a character JSON escapes, so a
# record whose text has none has none in any of its strings.
_IN_JSON_TEXT = re.compile(CHAT_CONTROL_TOKEN.pattern.encode())
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
    scan = ControlTokenScan()
    scan.add(records)
    return scan.note(path)


class ControlTokenScan:
    """`control_token_note` for a dataset read in parts: add each part, then ask for the note.
    Keeps the first few places and a count, whatever the number of records."""

    def __init__(self) -> None:
        self.places: list[tuple[str | None, int | None]] = []
        self.count = 0
        self.tokens: set[str] = set()

    def add(self, records: Iterable[Any]) -> None:
        for item in records:
            self.add_one(item)

    def add_one(self, item: Any, json_text: bytes | None = None) -> None:
        """Scan one record; `json_text`, its JSON when at hand, skips most records quickly."""
        if json_text is not None and _IN_JSON_TEXT.search(json_text) is None:
            return
        for text in record_strings(item.record):
            found = CHAT_CONTROL_TOKEN.findall(text)
            if found:
                self.tokens.update(found)
                self.count += 1
                if len(self.places) < SHOWN_LINES:
                    # A dataset of several shard files names each record's own file.
                    self.places.append((getattr(item, "file", None), item.line))
                return

    def note(self, path: str) -> str | None:
        if not self.count:
            return None
        where = ", ".join(
            f"{file or path}:{line}" for file, line in self.places if line is not None
        )
        more = f" and {self.count - SHOWN_LINES} more" if self.count > SHOWN_LINES else ""
        shown = ", ".join(sorted(self.tokens)[:4])
        return (
            f"warning: {self.count} record(s) hold chat-control tokens in their text ({shown}) "
            f"at {where}{more}; they are tokenized as real control tokens, so the model learns "
            "turns that end or start mid-message. Remove them unless that is what you want"
        )

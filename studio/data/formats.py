"""Record formats: one adapter each (detect, convert, describe), in one registry.

Canonical records:
- conversation: {"messages": [message, ...]} ending with the assistant, plus "tools" when the
  record defines tools (see `studio.data.messages` for the message shape)
- preference: {"prompt": [messages, last is user], "chosen": [assistant], "rejected": [assistant]}
- kto: {"prompt": [messages, last is user], "completion": [assistant], "label": bool}
- text: {"text": ...}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.data.converters import (
    Record,
    alpaca,
    kto,
    openai_messages,
    preference,
    sharegpt,
    text,
)
from studio.data.messages import ROLE_ALIASES, Message, RecordIssue, type_name

__all__ = [
    "FORMATS",
    "FORMAT_FIELDS",
    "FORMAT_KIND",
    "ROLE_ALIASES",
    "Message",
    "Record",
    "RecordFormat",
    "RecordIssue",
    "convert_record",
    "detect_record_format",
    "preference_to_conversation",
    "preference_to_kto",
    "record_text_length",
]

Converter = Callable[[Record, "str | None", "Counter[str] | None"], Record]


@dataclass(frozen=True)
class RecordFormat:
    """One record format: what it turns into, how to recognise it, and how to convert it."""

    name: str
    kind: str  # conversation | preference | kto | text
    fields: str  # what it needs, for hints in error messages
    example: str  # one JSON line, for --explain and the README
    detect: Callable[[Record], bool]
    convert: Converter
    more_examples: tuple[str, ...] = ()  # the other shapes it accepts


# ---------------------------------------------------------------- the registry


def _has(*names: str) -> Callable[[Record], bool]:
    return lambda record: any(name in record for name in names)


# Detection tries these in order: the first whose fields a record has wins.
FORMATS: dict[str, RecordFormat] = {
    fmt.name: fmt
    for fmt in (
        RecordFormat(
            "preference",
            "preference",
            "prompt (or conversations / messages / instruction + input), chosen, rejected "
            "(strings or messages), or chosen_messages, rejected_messages",
            '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}',
            _has("chosen", "rejected", "chosen_messages", "rejected_messages"),
            preference,
            (
                '{"conversations": [{"from": "human", "value": "2+2?"}], '
                '"chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", '
                '"value": "5"}}',
                '{"instruction": "Add.", "input": "2+2", "chosen": "4", "rejected": "5"}',
                '{"chosen_messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", '
                '"content": "4"}], "rejected_messages": [..., {"role": "assistant", '
                '"content": "5"}]}',
            ),
        ),
        RecordFormat(
            "kto",
            "kto",
            "messages (or conversations, prompt + completion) and label: true / false",
            '{"messages": [{"role": "user", "content": "2+2?"}, '
            '{"role": "assistant", "content": "5"}], "label": false}',
            lambda record: (
                ("label" in record or "kto_tag" in record)
                and any(
                    name in record for name in ("messages", "conversations", "completion", "output")
                )
            ),
            kto,
            ('{"prompt": "2+2?", "completion": "4", "label": true}',),
        ),
        RecordFormat(
            "messages",
            "conversation",
            "messages: [{role, content}, ...] (content may be a list of parts; tool_calls "
            "and tool messages with tools)",
            '{"messages": [{"role": "user", "content": "Hi"}, '
            '{"role": "assistant", "content": "Hello!"}]}',
            _has("messages"),
            openai_messages,
            (
                '{"messages": [{"role": "user", "content": [{"type": "image_url", ...}, '
                '{"type": "text", "text": "What is this?"}]}, {"role": "assistant", '
                '"content": "A cat."}]}',
                '{"messages": [{"role": "user", "content": "Weather in Paris?"}, '
                '{"role": "assistant", '
                '"tool_calls": [{"type": "function", "function": {"name": "get_weather", '
                '"arguments": '
                '"{\\"city\\": \\"Paris\\"}"}}]}, {"role": "tool", "content": "sunny"}, {"role": '
                '"assistant", "content": "Sunny."}], "tools": [{"type": "function", '
                '"function": {...}}]}',
            ),
        ),
        RecordFormat(
            "sharegpt",
            "conversation",
            "conversations: [{from, value}, ...] (function_call / observation turns with tools)",
            '{"conversations": [{"from": "human", "value": "Hi"}, '
            '{"from": "gpt", "value": "Hello!"}]}',
            _has("conversations"),
            sharegpt,
            (
                '{"conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": '
                '"function_call", "value": "{\\"name\\": \\"get_weather\\", \\"arguments\\": '
                '{\\"city\\": \\"Paris\\"}}"}, {"from": "observation", "value": "sunny"}, {"from": '
                '"gpt", "value": "Sunny."}], "tools": "[{\\"name\\": \\"get_weather\\"}]"}',
            ),
        ),
        RecordFormat(
            "alpaca",
            "conversation",
            "instruction, input (optional), output",
            '{"instruction": "Translate to French.", "input": "cat", "output": "chat"}',
            _has("instruction", "output"),
            alpaca,
        ),
        RecordFormat(
            "text",
            "text",
            "text",
            '{"text": "Any document, trained on every token."}',
            _has("text"),
            text,
        ),
    )
}
FORMAT_KIND: dict[str, str] = {name: fmt.kind for name, fmt in FORMATS.items()}
FORMAT_FIELDS: dict[str, str] = {name: fmt.fields for name, fmt in FORMATS.items()}


def detect_record_format(record: Any) -> str | None:
    """The format a single record looks like, from its keys; None if it fits none."""
    if not isinstance(record, dict):
        return None
    return next((fmt.name for fmt in FORMATS.values() if fmt.detect(record)), None)


def convert_record(
    record: Any,
    data_format: str,
    system_prompt: str | None = None,
    dropped_parts: Counter[str] | None = None,
) -> Record:
    """Convert one raw record of `data_format` to its canonical shape, or raise RecordIssue.
    Content parts that are not text (images, audio) are counted in `dropped_parts`."""
    if not isinstance(record, dict):
        raise RecordIssue(
            "wrong_type", None, f"a record must be an object, got {type_name(record)}"
        )
    return FORMATS[data_format].convert(record, system_prompt, dropped_parts)


def record_text_length(record: Record) -> int:
    """Characters of text in a canonical record (what min_chars is measured on)."""
    if "text" in record:
        return len(record["text"].strip())
    messages = record.get("messages") or [
        *record.get("prompt", []),
        *record.get("chosen", []),
        *record.get("rejected", []),
        *record.get("completion", []),
    ]
    # System prompts are excluded: a long default system prompt must not hide empty answers.
    return sum(
        len(message["content"].strip())
        + (len(str(message["tool_calls"])) if message.get("tool_calls") else 0)
        for message in messages
        if message["role"] != "system"
    )


def preference_to_conversation(record: Record) -> Record:
    """SFT on preference data: learn the chosen answer to the prompt."""
    return {"messages": [*record["prompt"], *record["chosen"]]}


def preference_to_kto(record: Record) -> list[Record]:
    """KTO on preference pairs: the chosen answer is a good one, the rejected a bad one."""
    return [
        {"prompt": record["prompt"], "completion": record["chosen"], "label": True},
        {"prompt": record["prompt"], "completion": record["rejected"], "label": False},
    ]

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

from studio.data.messages import (
    ROLE_ALIASES,
    Message,
    RecordIssue,
    check_turn_order,
    parse_messages,
    parse_tools,
    type_name,
    with_system,
)

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
    "record_text_length",
]

Record = dict[str, Any]
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


# ---------------------------------------------------------------- field helpers


def _string(record: Record, name: str, *, required: bool = True, allow_empty: bool = False) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordIssue("missing_field", name, f"'{name}' is missing")
        return ""
    if not isinstance(value, str):
        raise RecordIssue("wrong_type", name, f"'{name}' must be a string, got {type_name(value)}")
    if required and not allow_empty and not value.strip():
        raise RecordIssue("empty_field", name, f"'{name}' is empty")
    return value


def _list(record: Record, name: str) -> list[Any]:
    value = record.get(name)
    if value is None:
        raise RecordIssue("missing_field", name, f"'{name}' is missing")
    if not isinstance(value, list):
        raise RecordIssue("wrong_type", name, f"'{name}' must be a list, got {type_name(value)}")
    if not value:
        raise RecordIssue("empty_field", name, f"'{name}' is an empty list")
    return value


def _with_tools(record: Record, messages: list[Message]) -> Record:
    tools = parse_tools(record["tools"]) if record.get("tools") is not None else []
    return {"messages": messages, "tools": tools} if tools else {"messages": messages}


def _alpaca_turns(record: Record) -> list[Message]:
    """History pairs, then instruction (+ input) as the user's turn."""
    instruction = _string(record, "instruction")
    extra_input = _string(record, "input", required=False)
    messages: list[Message] = []
    history = record.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise RecordIssue(
                "wrong_type", "history", f"'history' must be a list, got {type_name(history)}"
            )
        for index, pair in enumerate(history):
            if not (
                isinstance(pair, list | tuple)
                and len(pair) == 2
                and all(isinstance(text, str) for text in pair)
            ):
                raise RecordIssue(
                    "wrong_type",
                    "history",
                    f"history[{index}] must be a [user, assistant] pair of strings",
                )
            if not (pair[0].strip() and pair[1].strip()):
                raise RecordIssue("empty_field", "history", f"history[{index}] has an empty turn")
            messages += [
                {"role": "user", "content": pair[0]},
                {"role": "assistant", "content": pair[1]},
            ]
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return [*messages, {"role": "user", "content": prompt}]


def _system(record: Record, default: str | None) -> str | None:
    return _string(record, "system", required=False) or default


# ---------------------------------------------------------------- conversation formats


def _alpaca(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    messages = _alpaca_turns(record)
    output = _string(record, "output")
    messages.append({"role": "assistant", "content": output})
    return {"messages": with_system(messages, _system(record, system_prompt))}


def _sharegpt(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    turns = _list(record, "conversations")
    messages = parse_messages(turns, "conversations", "from", "value", parts)
    messages = with_system(messages, _system(record, system_prompt))
    check_turn_order(messages, "conversations", final="assistant")
    return _with_tools(record, messages)


def _openai_messages(
    record: Record, system_prompt: str | None, parts: Counter[str] | None
) -> Record:
    messages = parse_messages(_list(record, "messages"), "messages", "role", "content", parts)
    messages = with_system(messages, _system(record, system_prompt))
    check_turn_order(messages, "messages", final="assistant")
    return _with_tools(record, messages)


# ---------------------------------------------------------------- preference


def _answer(
    record: Record, name: str, parts: Counter[str] | None
) -> tuple[list[Message], list[Message]]:
    """(conversation before the answer, [final assistant message]) for chosen / rejected."""
    value = record.get(name)
    if value is None:
        raise RecordIssue("missing_field", name, f"'{name}' is missing")
    if isinstance(value, str):
        if not value.strip():
            raise RecordIssue("empty_field", name, f"'{name}' is empty")
        return [], [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        value = [value]  # a single message object, {role, content} or {from, value}
    if not isinstance(value, list):
        raise RecordIssue(
            "wrong_type",
            name,
            f"'{name}' must be a string or a list of messages, got {type_name(value)}",
        )
    if not value:
        raise RecordIssue("empty_field", name, f"'{name}' is an empty list")
    messages = parse_messages(value, name, "role", "content", parts)
    if not messages or messages[-1]["role"] != "assistant":
        raise RecordIssue("bad_role", name, f"the last message of '{name}' must be the assistant's")
    return messages[:-1], messages[-1:]


def _prompt(
    record: Record, before: tuple[list[Message], list[Message]], parts: Counter[str] | None
) -> list[Message]:
    """The conversation before the answer, from whichever field this shape keeps it in."""
    prompt_value = record.get("prompt")
    if prompt_value is None:
        if isinstance(record.get("conversations"), list):  # sharegpt-style preference
            return parse_messages(
                _list(record, "conversations"), "conversations", "from", "value", parts
            )
        if isinstance(record.get("messages"), list):
            return parse_messages(_list(record, "messages"), "messages", "role", "content", parts)
        if "instruction" in record:  # alpaca-style preference
            return _alpaca_turns(record)
        # Whole conversations in chosen / rejected: the prompt is what they share.
        shared: list[Message] = []
        for left, right in zip(*before, strict=False):
            if left != right:
                break
            shared.append(left)
        if not shared:
            raise RecordIssue(
                "missing_field",
                "prompt",
                "'prompt' is missing and chosen / rejected share no conversation before the "
                "answers",
            )
        return shared
    if isinstance(prompt_value, str):
        if not prompt_value.strip():
            raise RecordIssue("empty_field", "prompt", "'prompt' is empty")
        return [{"role": "user", "content": prompt_value}]
    if isinstance(prompt_value, list):
        if not prompt_value:
            raise RecordIssue("empty_field", "prompt", "'prompt' is an empty list")
        return parse_messages(prompt_value, "prompt", "role", "content", parts)
    raise RecordIssue(
        "wrong_type",
        "prompt",
        f"'prompt' must be a string or a list of messages, got {type_name(prompt_value)}",
    )


def _preference(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    chosen_name = (
        "chosen" if "chosen" in record or "chosen_messages" not in record else ("chosen_messages")
    )
    rejected_name = (
        "rejected"
        if "rejected" in record or "rejected_messages" not in record
        else "rejected_messages"
    )
    chosen_before, chosen = _answer(record, chosen_name, parts)
    rejected_before, rejected = _answer(record, rejected_name, parts)
    prompt = _prompt(record, (chosen_before, rejected_before), parts)
    prompt = with_system(prompt, _system(record, system_prompt))
    check_turn_order(prompt, "prompt", final="user")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# ---------------------------------------------------------------- KTO


def _label(record: Record) -> bool:
    name = "label" if "label" in record else "kto_tag"
    value = record.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}  # CSV cells are strings
    if value is None:
        raise RecordIssue("missing_field", name, f"'{name}' is missing")
    raise RecordIssue(
        "wrong_type", name, f"'{name}' must be true (a good answer) or false, got {value!r}"
    )


def _kto(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    label = _label(record)
    if "completion" in record:
        prompt_before, completion = _answer(record, "completion", parts)
        shaped = ("prompt", "conversations", "messages", "instruction")
        if not prompt_before and not any(name in record for name in shaped):
            raise RecordIssue("missing_field", "prompt", "'prompt' is missing")
        prompt = prompt_before or _prompt(record, ([], []), parts)
    else:
        if "messages" in record:
            conversation = _openai_messages(record, None, parts)["messages"]
            field = "messages"
        elif "conversations" in record:
            conversation = _sharegpt(record, None, parts)["messages"]
            field = "conversations"
        else:
            conversation = _alpaca(record, None, parts)["messages"]
            field = "output"
        if conversation[-1].get("tool_calls"):
            raise RecordIssue("bad_role", field, f"'{field}' must end with an answer")
        prompt, completion = conversation[:-1], conversation[-1:]
    prompt = with_system(prompt, _system(record, system_prompt))
    check_turn_order(prompt, "prompt", final="user")
    return {"prompt": prompt, "completion": completion, "label": label}


def _text(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    return {"text": _string(record, "text")}


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
            _preference,
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
            _kto,
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
            _openai_messages,
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
            _sharegpt,
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
            _alpaca,
        ),
        RecordFormat(
            "text",
            "text",
            "text",
            '{"text": "Any document, trained on every token."}',
            _has("text"),
            _text,
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

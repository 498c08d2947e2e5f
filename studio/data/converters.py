"""Converters from each record format to its canonical record (see `studio.data.formats`).

Each takes (raw record, default system prompt, counter of dropped content parts) and returns
the canonical record or raises `RecordIssue` naming the reason, field and detail.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from studio.data.messages import (
    Message,
    RecordIssue,
    check_turn_order,
    parse_messages,
    parse_tools,
    type_name,
    with_system,
)

Record = dict[str, Any]


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


def alpaca(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    messages = _alpaca_turns(record)
    output = _string(record, "output")
    messages.append({"role": "assistant", "content": output})
    return {"messages": with_system(messages, _system(record, system_prompt))}


def sharegpt(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    turns = _list(record, "conversations")
    messages = parse_messages(turns, "conversations", "from", "value", parts)
    messages = with_system(messages, _system(record, system_prompt))
    check_turn_order(messages, "conversations", final="assistant")
    return _with_tools(record, messages)


def openai_messages(
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


def preference(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
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


def kto(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    label = _label(record)
    if "completion" in record:
        prompt_before, completion = _answer(record, "completion", parts)
        shaped = ("prompt", "conversations", "messages", "instruction")
        if not prompt_before and not any(name in record for name in shaped):
            raise RecordIssue("missing_field", "prompt", "'prompt' is missing")
        prompt = prompt_before or _prompt(record, ([], []), parts)
    else:
        if "messages" in record:
            conversation = openai_messages(record, None, parts)["messages"]
            field = "messages"
        elif "conversations" in record:
            conversation = sharegpt(record, None, parts)["messages"]
            field = "conversations"
        else:
            conversation = alpaca(record, None, parts)["messages"]
            field = "output"
        if conversation[-1].get("tool_calls"):
            raise RecordIssue("bad_role", field, f"'{field}' must end with an answer")
        prompt, completion = conversation[:-1], conversation[-1:]
    prompt = with_system(prompt, _system(record, system_prompt))
    check_turn_order(prompt, "prompt", final="user")
    return {"prompt": prompt, "completion": completion, "label": label}


def text(record: Record, system_prompt: str | None, parts: Counter[str] | None) -> Record:
    return {"text": _string(record, "text")}

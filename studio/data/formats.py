"""Record formats: detect them from the fields, and convert records to the canonical shapes.

Canonical records:
- conversation: {"messages": [{"role": ..., "content": ...}, ...]}, ends with the assistant
- preference: {"prompt": [messages, last is user], "chosen": [assistant], "rejected": [assistant]}
- text: {"text": ...}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Message = dict[str, str]
Record = dict[str, Any]

FORMAT_KIND: dict[str, str] = {
    "alpaca": "conversation",
    "sharegpt": "conversation",
    "messages": "conversation",
    "preference": "preference",
    "text": "text",
}
# What each format needs, for hints in error messages.
FORMAT_FIELDS: dict[str, str] = {
    "alpaca": "instruction, input (optional), output",
    "sharegpt": "conversations: [{from, value}, ...]",
    "messages": "messages: [{role, content}, ...]",
    "preference": "prompt, chosen, rejected",
    "text": "text",
}
ROLE_ALIASES: dict[str, str] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}

_TOOL_ROLES = frozenset({"tool", "function", "function_call", "observation", "ipython"})


class RecordIssue(Exception):
    """Why one record cannot be used; becomes a `RecordProblem` with the record's line."""

    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def detect_record_format(record: Any) -> str | None:
    """The format a single record looks like, from its keys; None if it fits none."""
    if not isinstance(record, dict):
        return None
    keys = record.keys()
    if "chosen" in keys or "rejected" in keys:
        return "preference"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys or "output" in keys:
        return "alpaca"
    if "text" in keys:
        return "text"
    return None


def convert_record(record: Any, data_format: str, system_prompt: str | None = None) -> Record:
    """Convert one raw record of `data_format` to its canonical shape, or raise RecordIssue."""
    if not isinstance(record, dict):
        raise RecordIssue(
            "wrong_type", None, f"a record must be an object, got {_type_name(record)}"
        )
    return _CONVERTERS[data_format](record, system_prompt)


# ---------------------------------------------------------------- field helpers


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _string(record: Record, name: str, *, required: bool = True, allow_empty: bool = False) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordIssue("missing_field", name, f"'{name}' is missing")
        return ""
    if not isinstance(value, str):
        raise RecordIssue("wrong_type", name, f"'{name}' must be a string, got {_type_name(value)}")
    if required and not allow_empty and not value.strip():
        raise RecordIssue("empty_field", name, f"'{name}' is empty")
    return value


def _list(record: Record, name: str) -> list[Any]:
    value = record.get(name)
    if value is None:
        raise RecordIssue("missing_field", name, f"'{name}' is missing")
    if not isinstance(value, list):
        raise RecordIssue("wrong_type", name, f"'{name}' must be a list, got {_type_name(value)}")
    if not value:
        raise RecordIssue("empty_field", name, f"'{name}' is an empty list")
    return value


def _content(value: Any, field: str, where: str) -> str:
    """Message content: a string, or OpenAI-style text parts joined together."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in value
    ):
        return "".join(part["text"] for part in value)
    if value is None:
        raise RecordIssue("missing_field", field, f"{where} has no content")
    raise RecordIssue(
        "wrong_type", field, f"{where} content must be a string, got {_type_name(value)}"
    )


def _messages(turns: list[Any], field: str, role_key: str, content_key: str) -> list[Message]:
    """Validate a list of turns into messages; system only first, then user/assistant turns."""
    messages: list[Message] = []
    for index, turn in enumerate(turns):
        where = f"{field}[{index}]"
        if not isinstance(turn, dict):
            raise RecordIssue(
                "wrong_type", field, f"{where} must be an object, got {_type_name(turn)}"
            )
        if role_key not in turn:
            raise RecordIssue("missing_field", field, f"{where} has no '{role_key}'")
        raw_role = turn[role_key]
        role = ROLE_ALIASES.get(raw_role.lower()) if isinstance(raw_role, str) else None
        if role is None:
            tool = isinstance(raw_role, str) and raw_role.lower() in _TOOL_ROLES
            raise RecordIssue(
                "bad_role",
                field,
                f"{where} has role {raw_role!r}; use system, user or assistant"
                + (" (tool calls are not supported)" if tool else ""),
            )
        if content_key not in turn:
            raise RecordIssue("missing_field", field, f"{where} has no '{content_key}'")
        content = _content(turn[content_key], field, where)
        if not content.strip():
            if role == "system":
                continue  # an empty system prompt is the same as none
            raise RecordIssue("empty_field", field, f"{where} ({role}) is empty")
        messages.append({"role": role, "content": content})
    return messages


def _check_alternation(messages: list[Message], field: str, *, final: str) -> None:
    """After an optional system message, user and assistant alternate starting with user."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise RecordIssue("empty_field", field, f"'{field}' has no user or assistant turns")
    for index, message in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            position = index + (len(messages) - len(body))
            if message["role"] == "system":
                detail = f"{field}[{position}]: a system message is only allowed first"
            else:
                detail = (
                    f"{field}[{position}] is {message['role']}, expected {expected} "
                    "(turns must alternate user, assistant, ...)"
                )
            raise RecordIssue("bad_role", field, detail)
    if body[-1]["role"] != final:
        raise RecordIssue("bad_role", field, f"'{field}' must end with a {final} turn")


def _with_system(messages: list[Message], system: str | None) -> list[Message]:
    if system and system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


# ---------------------------------------------------------------- converters


def _alpaca(record: Record, system_prompt: str | None) -> Record:
    instruction = _string(record, "instruction")
    extra_input = _string(record, "input", required=False)
    output = _string(record, "output")
    system = _string(record, "system", required=False) or system_prompt
    messages: list[Message] = []
    history = record.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise RecordIssue(
                "wrong_type", "history", f"'history' must be a list, got {_type_name(history)}"
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
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return {"messages": _with_system(messages, system)}


def _sharegpt(record: Record, system_prompt: str | None) -> Record:
    turns = _list(record, "conversations")
    messages = _messages(turns, "conversations", "from", "value")
    system = _string(record, "system", required=False) or system_prompt
    messages = _with_system(messages, system)
    _check_alternation(messages, "conversations", final="assistant")
    return {"messages": messages}


def _openai_messages(record: Record, system_prompt: str | None) -> Record:
    messages = _messages(_list(record, "messages"), "messages", "role", "content")
    messages = _with_system(messages, system_prompt)
    _check_alternation(messages, "messages", final="assistant")
    return {"messages": messages}


def _answer(record: Record, name: str) -> tuple[list[Message], list[Message]]:
    """(conversation before the answer, [final assistant message]) for chosen / rejected."""
    value = record.get(name)
    if value is None:
        raise RecordIssue("missing_field", name, f"'{name}' is missing")
    if isinstance(value, str):
        if not value.strip():
            raise RecordIssue("empty_field", name, f"'{name}' is empty")
        return [], [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        value = [value]  # a single message object
    if not isinstance(value, list):
        raise RecordIssue(
            "wrong_type",
            name,
            f"'{name}' must be a string or a list of messages, got {_type_name(value)}",
        )
    if not value:
        raise RecordIssue("empty_field", name, f"'{name}' is an empty list")
    messages = _messages(value, name, "role", "content")
    if not messages or messages[-1]["role"] != "assistant":
        raise RecordIssue("bad_role", name, f"the last message of '{name}' must be the assistant's")
    return messages[:-1], messages[-1:]


def _preference(record: Record, system_prompt: str | None) -> Record:
    chosen_before, chosen = _answer(record, "chosen")
    rejected_before, rejected = _answer(record, "rejected")
    prompt_value = record.get("prompt")
    if prompt_value is None:
        # Whole conversations in chosen / rejected: the prompt is what they share.
        shared: list[Message] = []
        for left, right in zip(chosen_before, rejected_before, strict=False):
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
        prompt = shared
    elif isinstance(prompt_value, str):
        if not prompt_value.strip():
            raise RecordIssue("empty_field", "prompt", "'prompt' is empty")
        prompt = [{"role": "user", "content": prompt_value}]
    elif isinstance(prompt_value, list):
        if not prompt_value:
            raise RecordIssue("empty_field", "prompt", "'prompt' is an empty list")
        prompt = _messages(prompt_value, "prompt", "role", "content")
    else:
        raise RecordIssue(
            "wrong_type",
            "prompt",
            f"'prompt' must be a string or a list of messages, got {_type_name(prompt_value)}",
        )
    system = _string(record, "system", required=False) or system_prompt
    prompt = _with_system(prompt, system)
    _check_alternation(prompt, "prompt", final="user")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _text(record: Record, system_prompt: str | None) -> Record:
    return {"text": _string(record, "text")}


_CONVERTERS: dict[str, Callable[[Record, str | None], Record]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "messages": _openai_messages,
    "preference": _preference,
    "text": _text,
}


def record_text_length(record: Record) -> int:
    """Characters of text in a canonical record (what min_chars is measured on)."""
    if "text" in record:
        return len(record["text"].strip())
    messages = record.get("messages") or [
        *record.get("prompt", []),
        *record.get("chosen", []),
        *record.get("rejected", []),
    ]
    # System prompts are excluded: a long default system prompt must not hide empty answers.
    return sum(
        len(message["content"].strip()) for message in messages if message["role"] != "system"
    )


def preference_to_conversation(record: Record) -> Record:
    """SFT on preference data: learn the chosen answer to the prompt."""
    return {"messages": [*record["prompt"], *record["chosen"]]}

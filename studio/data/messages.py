"""Turns of a conversation in any of the shapes users have, read into canonical messages.

A canonical message is {"role": system | user | assistant | tool, "content": str}; an
assistant message that calls tools also has "tool_calls": [{"type": "function", "function":
{"name": str, "arguments": dict}}], the shape transformers' chat templates expect.

Read here: role/content (OpenAI) and from/value (sharegpt) turns; content as a string or a
list of parts (text parts kept, image / audio / other parts counted as dropped); tool calls as
OpenAI `tool_calls` / legacy `function_call`, or as LLaMA-Factory `function_call` turns whose
value is the call's JSON; tool results as `tool`, `function`, `observation` or `ipython` turns.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

Message = dict[str, Any]

ROLE_ALIASES: dict[str, str] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}
# A LLaMA-Factory turn whose value is the assistant's tool call as JSON.
CALL_ROLES = frozenset({"function_call", "tool_call"})
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


class RecordIssue(Exception):
    """Why one record cannot be used; becomes a `RecordProblem` with the record's line."""

    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def content_text(value: Any, field: str, where: str, dropped_parts: Counter[str] | None) -> str:
    """Message content: a string, or the text of a list of parts (others counted as dropped)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "type" in value:
        value = [value]  # a single part
    if isinstance(value, list):
        texts: list[str] = []
        for index, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, dict):
                raise RecordIssue(
                    "wrong_type",
                    field,
                    f"{where} content[{index}] must be an object, got {type_name(part)}",
                )
            kind = str(part.get("type", "text"))
            text = part.get("text", part.get("value"))
            if kind in _TEXT_PARTS and isinstance(text, str):
                texts.append(text)
            elif dropped_parts is not None:
                dropped_parts[kind] += 1
            # A text-only run keeps text parts; images / audio have nowhere to go.
        return "".join(texts)
    if value is None:
        raise RecordIssue("missing_field", field, f"{where} has no content")
    raise RecordIssue(
        "wrong_type", field, f"{where} content must be a string, got {type_name(value)}"
    )


def parse_messages(
    turns: list[Any],
    field: str,
    role_key: str,
    content_key: str,
    dropped_parts: Counter[str] | None = None,
) -> list[Message]:
    """Turns into messages. Each turn may use role/content or from/value, whichever it has;
    an empty system prompt is left out."""
    other_keys = {"role": ("from", "value"), "from": ("role", "content")}
    messages: list[Message] = []
    for index, turn in enumerate(turns):
        where = f"{field}[{index}]"
        if not isinstance(turn, dict):
            raise RecordIssue(
                "wrong_type", field, f"{where} must be an object, got {type_name(turn)}"
            )
        roles, contents = role_key, content_key
        if role_key not in turn and other_keys[role_key][0] in turn:
            roles, contents = other_keys[role_key]
        if roles not in turn:
            raise RecordIssue("missing_field", field, f"{where} has no '{role_key}'")
        raw_role = turn[roles]
        name = raw_role.lower() if isinstance(raw_role, str) else None
        if name in CALL_ROLES:
            messages.append(_call_turn(turn.get(contents), field, where))
            continue
        role = ROLE_ALIASES.get(name) if name is not None else None
        if role is None:
            raise RecordIssue(
                "bad_role",
                field,
                f"{where} has role {raw_role!r}; use system, user, assistant or tool",
            )
        calls = _turn_calls(turn, field, where) if role == "assistant" else []
        if contents not in turn and not calls:
            raise RecordIssue("missing_field", field, f"{where} has no '{contents}'")
        raw_content = turn.get(contents)
        content = (
            ""
            if raw_content is None and calls
            else content_text(raw_content, field, where, dropped_parts)
        )
        if not content.strip() and not calls:
            if role == "system":
                continue  # an empty system prompt is the same as none
            raise RecordIssue("empty_field", field, f"{where} ({role}) is empty")
        message: Message = {"role": role, "content": content}
        if calls:
            message["tool_calls"] = calls
        if role == "tool" and isinstance(turn.get("name"), str):
            message["name"] = turn["name"]
        messages.append(message)
    return messages


def _call_turn(value: Any, field: str, where: str) -> Message:
    """A LLaMA-Factory function_call turn: its value is one call, or a list of calls, as JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RecordIssue(
                "wrong_type", field, f"{where}: the tool call is not valid JSON ({error.msg})"
            ) from None
    calls = value if isinstance(value, list) else [value]
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [_call(call, field, f"{where}[{n}]") for n, call in enumerate(calls)],
    }


def _turn_calls(turn: dict[str, Any], field: str, where: str) -> list[dict[str, Any]]:
    """OpenAI tool_calls (or the older single function_call) of an assistant turn."""
    value = turn.get("tool_calls")
    if value is None and isinstance(turn.get("function_call"), dict):
        value = [turn["function_call"]]
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordIssue(
            "wrong_type", field, f"{where} tool_calls must be a list, got {type_name(value)}"
        )
    return [_call(call, field, f"{where}.tool_calls[{n}]") for n, call in enumerate(value)]


def _call(call: Any, field: str, where: str) -> dict[str, Any]:
    """One call as {"type": "function", "function": {"name", "arguments": dict}}."""
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        call = call["function"]
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
        raise RecordIssue("wrong_type", field, f"{where}: a tool call needs a 'name'")
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise RecordIssue(
                "wrong_type", field, f"{where}: the call's arguments are not JSON ({error.msg})"
            ) from None
    if not isinstance(arguments, dict):
        raise RecordIssue(
            "wrong_type", field, f"{where}: arguments must be an object, got {type_name(arguments)}"
        )
    return {"type": "function", "function": {"name": call["name"], "arguments": arguments}}


def parse_tools(value: Any) -> list[dict[str, Any]]:
    """The record's tool definitions (a list, or a JSON string of one) in OpenAI shape."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RecordIssue(
                "wrong_type", "tools", f"'tools' is not valid JSON ({error.msg})"
            ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordIssue("wrong_type", "tools", f"'tools' must be a list, got {type_name(value)}")
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(value):
        schema = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise RecordIssue("wrong_type", "tools", f"tools[{index}] needs a 'name'")
        tools.append({"type": "function", "function": schema})
    return tools


def check_turn_order(messages: list[Message], field: str, *, final: str) -> None:
    """After an optional system message: user first; an assistant answers a user or tool
    results; tool results follow an assistant's tool calls; the last turn is `final`."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise RecordIssue("empty_field", field, f"'{field}' has no user or assistant turns")
    offset = len(messages) - len(body)
    previous: Message | None = None
    for index, message in enumerate(body):
        role = message["role"]
        if previous is None:
            allowed = {"user"}
        elif previous["role"] == "user":
            allowed = {"assistant"}
        elif previous["role"] == "tool":
            allowed = {"tool", "assistant"}
        elif previous.get("tool_calls"):
            allowed = {"tool"}
        else:
            allowed = {"user"}
        if role not in allowed:
            position = index + offset
            expected = " or ".join(sorted(allowed))
            if role == "system":
                detail = f"{field}[{position}]: a system message is only allowed first"
            elif role == "tool" or "tool" in allowed:
                detail = (
                    f"{field}[{position}] is {role}, expected {expected} "
                    "(tool results must follow the assistant's tool call)"
                )
            else:
                detail = (
                    f"{field}[{position}] is {role}, expected {expected} "
                    "(turns must alternate user, assistant, ...)"
                )
            raise RecordIssue("bad_role", field, detail)
        previous = message
    if body[-1]["role"] != final:
        raise RecordIssue("bad_role", field, f"'{field}' must end with a {final} turn")


def with_system(messages: list[Message], system: str | None) -> list[Message]:
    if system and system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages

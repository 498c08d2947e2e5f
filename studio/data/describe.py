"""A canonical record as readable text: what `ftstudio data check` and the Config preview show
of each record after conversion (without a chat template; the preview adds one when it can)."""

from __future__ import annotations

import json
from typing import Any


def describe_message(message: dict[str, Any]) -> str:
    lines = [f"{message['role']}: {message['content']}"] if message["content"] else []
    for call in message.get("tool_calls") or []:
        function = call["function"]
        arguments = json.dumps(function["arguments"], ensure_ascii=False)
        lines.append(f"{message['role']}: [calls {function['name']}({arguments})]")
    return "\n".join(lines)


def describe_record(record: dict[str, Any], kind: str) -> str:
    """One record of `kind` (conversation, preference, kto, text) as a few lines."""
    if kind == "text":
        return str(record.get("text", ""))
    if kind == "conversation":
        lines = [describe_message(m) for m in record["messages"]]
        tools = [tool["function"]["name"] for tool in record.get("tools", [])]
        if tools:
            lines.insert(0, f"tools: {', '.join(tools)}")
        return "\n".join(lines)
    lines = [describe_message(m) for m in record["prompt"]]
    if kind == "preference":
        lines.append("chosen: " + " ".join(m["content"] for m in record["chosen"]))
        lines.append("rejected: " + " ".join(m["content"] for m in record["rejected"]))
    else:
        label = "good" if record["label"] else "bad"
        lines.append(f"answer ({label}): " + " ".join(m["content"] for m in record["completion"]))
    return "\n".join(lines)

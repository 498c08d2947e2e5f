"""Turn canonical records into token ids and labels for causal-LM training.

Conversations go through the tokenizer's chat template. The loss is on the assistant's tokens
only by default: each assistant turn's span is found by rendering the conversation up to that
turn (with the generation prompt) and the conversation including it; the characters between
the two renderings are the turn's answer, mapped to tokens through the tokenizer's offsets.
This works for any chat template whose renderings extend each other, with no markers needed.

Tool-calling conversations pass their tool definitions to the template (`tools=`), and the
assistant's calls are trained like its answers; tool results are input, never trained on. A
template that knows nothing of tools gets the calls written into the assistant's text as
`<tool_call>` JSON and the tool definitions in the system prompt, so nothing is lost silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from studio.errors import DataError

IGNORE_INDEX = -100


@dataclass
class EncodingStats:
    examples: int = 0
    truncated: int = 0
    split_documents: int = 0
    dropped_no_target: int = 0
    tokens: int = 0
    target_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{self.examples} examples, {self.tokens} tokens ({self.target_tokens} trained on)"
        ]
        if self.truncated:
            parts.append(f"{self.truncated} truncated to max_length")
        if self.split_documents:
            parts.append(f"{self.split_documents} documents split into max_length chunks")
        if self.dropped_no_target:
            parts.append(
                f"{self.dropped_no_target} dropped: nothing left to learn after truncation"
            )
        return "; ".join(parts)


def encode_conversation(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    max_length: int,
    assistant_only: bool,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) for one conversation."""
    messages, tools = fit_tools_to_template(tokenizer, messages, tools)
    text = render_conversation(tokenizer, messages, tools)
    encoded = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, truncation=False
    )
    input_ids: list[int] = encoded["input_ids"]
    if assistant_only:
        spans = assistant_spans(tokenizer, messages, text, tools)
        labels = [
            token if _inside(offset, spans) else IGNORE_INDEX
            for token, offset in zip(input_ids, encoded["offset_mapping"], strict=True)
        ]
    else:
        labels = list(input_ids)
    truncated = len(input_ids) > max_length
    return input_ids[:max_length], labels[:max_length], truncated


def render_conversation(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """The chat template's text; `tools` only when there are some (templates test for it)."""
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra
    )


def render_conversations(
    tokenizer: Any,
    wanted: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None, bool]],
) -> list[str]:
    """`render_conversation` of each (messages, tools, add_generation_prompt) in `wanted`.

    Conversations without tools go to the template in batches, one call per value of
    add_generation_prompt: transformers renders each conversation of a batch exactly as it
    would alone (the same template, variables and normalisation), once per call its lookups of
    the template and the special tokens. The others (with tools, or empty: transformers
    refuses those alone) are rendered one by one."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    rendered: list[str] = [""] * len(wanted)
    batches: dict[bool, list[int]] = {False: [], True: []}
    own_method = (
        type(tokenizer).apply_chat_template is not PreTrainedTokenizerBase.apply_chat_template
    )
    for index, (messages, tools, prompt) in enumerate(wanted):
        if messages and not tools and not own_method:
            batches[prompt].append(index)
        else:
            rendered[index] = render_conversation(
                tokenizer, messages, tools, add_generation_prompt=prompt
            )
    for prompt, members in batches.items():
        if members:
            texts = tokenizer.apply_chat_template(
                [wanted[index][0] for index in members],
                tokenize=False,
                add_generation_prompt=prompt,
            )
            for index, text in zip(members, texts, strict=True):
                rendered[index] = text
    return rendered


def template_knows_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return isinstance(template, str) and "tool_calls" in template


def fit_tools_to_template(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Messages and tools as the template can render them (see the module docstring)."""
    has_calls = any(message.get("tool_calls") for message in messages)
    if not (tools or has_calls) or template_knows_tools(tokenizer):
        return messages, tools
    fitted: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            written = "\n".join(
                "<tool_call>\n"
                + json.dumps(call["function"], ensure_ascii=False)
                + "\n</tool_call>"
                for call in calls
            )
            content = f"{message['content']}\n{written}" if message["content"] else written
            message = {"role": "assistant", "content": content}
        fitted.append(message)
    if tools:
        listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
        preamble = f"You can call these tools:\n<tools>\n{listed}\n</tools>"
        if fitted and fitted[0]["role"] == "system":
            fitted[0] = {"role": "system", "content": f"{fitted[0]['content']}\n\n{preamble}"}
        else:
            fitted.insert(0, {"role": "system", "content": preamble})
    return fitted, None


def assistant_spans(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    full_text: str,
    tools: list[dict[str, Any]] | None = None,
) -> list[tuple[int, int]]:
    """Character spans of the assistant's turns (answers and tool calls) in `full_text`, the
    whole conversation as `render_conversation` renders it (so the last turn is not rendered
    again)."""
    renderings = [
        render_conversation(tokenizer, part, tools, add_generation_prompt=prompt)
        for part, prompt in span_renderings(messages)
    ]
    return spans_from_renderings(messages, full_text, renderings)


def span_renderings(messages: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], bool]]:
    """What `assistant_spans` renders, in order, as (messages, add_generation_prompt): for each
    assistant turn the conversation before it with the generation prompt, then the
    conversation through it, except for the last message (the full text is that)."""
    wanted = []
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            wanted.append((messages[:index], True))
            if index != last:
                wanted.append((messages[: index + 1], False))
    return wanted


def spans_from_renderings(
    messages: list[dict[str, Any]], full_text: str, renderings: list[str]
) -> list[tuple[int, int]]:
    """The assistant's spans from the texts of `span_renderings(messages)`, in its order."""
    spans = []
    rendered = iter(renderings)
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = next(rendered)
        through = full_text if index == last else next(rendered)
        if not (full_text.startswith(before) and full_text.startswith(through)):
            raise DataError(
                "the chat template renders a conversation differently from its prefixes, so "
                "the assistant's answers cannot be located",
                advice="set training.assistant_only_loss: false, or model.chat_template to a "
                "template whose renderings extend each other",
            )
        spans.append((len(before), len(through)))
    return spans


def _inside(offset: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    start, end = offset
    return any(start >= low and end <= high and end > start for low, high in spans)


def encode_text(tokenizer: Any, text: str, max_length: int) -> list[list[int]]:
    """A raw document split into chunks of at most max_length tokens, ending with EOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return [ids[start : start + max_length] for start in range(0, len(ids), max_length)]


def require_chat_template(tokenizer: Any, kind: str) -> None:
    """Records of `kind` other than raw text are rendered through the tokenizer's chat
    template: refuse them, saying how to get one, when it has none."""
    if kind != "text" and not getattr(tokenizer, "chat_template", None):
        raise DataError(
            f"the model's tokenizer has no chat template, so {kind} records cannot be formatted",
            advice="set model.chat_template_preset (auto picks one for base models; chatml, "
            "llama3, alpaca, ...) or model.chat_template, or train on raw text with "
            "training_type: pretrain",
        )


def encode_records(
    tokenizer: Any,
    records: list[dict[str, Any]],
    kind: str,
    max_length: int,
    assistant_only: bool = True,
) -> tuple[list[dict[str, list[int]]], EncodingStats]:
    """Encode conversation or text records into {"input_ids", "labels"} features."""
    require_chat_template(tokenizer, kind)
    from studio.engine.batch_encoding import encode_batch

    # One batch: the same ids and labels as encode_conversation / encode_text per record.
    batch, stats = encode_batch(tokenizer, records, kind, max_length, assistant_only)
    features = [
        {"input_ids": ids, "labels": labels}
        for ids, labels in zip(batch.column("input_ids"), batch.column("labels"), strict=True)
    ]
    return features, stats


class PaddingCollator:
    """Pads a batch to its longest example; counts the real tokens it has handed out."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.tokens_seen = 0

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        longest = max(len(item["input_ids"]) for item in batch)
        input_ids, labels, attention = [], [], []
        for item in batch:
            pad = longest - len(item["input_ids"])
            input_ids.append(item["input_ids"] + [self.pad_token_id] * pad)
            labels.append(item["labels"] + [IGNORE_INDEX] * pad)
            attention.append([1] * len(item["input_ids"]) + [0] * pad)
            self.tokens_seen += len(item["input_ids"])
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(attention, dtype=torch.long),
        }

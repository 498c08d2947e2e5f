"""The prompt for the next reply: the conversation through the chat template, as token ids.

Rendered and tokenized the way training encodes conversations (template text first, then
tokens without extra special tokens), so the model sees at chat time what it learned from.
When the conversation outgrows the model's context, the oldest turns are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.chat.settings import HistoryItem, build_messages
from studio.errors import ModelError, StudioError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PromptTooLong(StudioError):
    """Even the new message alone does not fit in the model's context."""


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    messages: list[dict[str, str]]
    dropped_messages: int  # oldest history messages left out to fit the context


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The chat template's text for `messages`, ending with the assistant's turn opening."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "the tokenizer has no chat template, so a conversation cannot be formatted",
            advice="set model.chat_template in the run config to a Jinja template for this model",
        )
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as error:  # jinja2 TemplateError, or a template's own raise_exception
        if messages and messages[0]["role"] == "system":
            # Some templates (Gemma, Mistral) reject a system role: fold it into the first turn.
            return render(tokenizer, _fold_system(messages))
        raise ModelError(
            f"the chat template cannot format this conversation: {error}",
            advice="templates usually need user and assistant turns to alternate",
        ) from None


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    history: Sequence[HistoryItem],
    user_message: str,
    system_prompt: str = "",
    max_tokens: int | None = None,
) -> Prompt:
    """Token ids for the next reply; drops the oldest turns while over `max_tokens`."""
    messages = build_messages(history, user_message, system_prompt)
    dropped = 0
    while True:
        ids = tokenizer(render(tokenizer, messages), add_special_tokens=False)["input_ids"]
        if max_tokens is None or len(ids) <= max_tokens:
            return Prompt(ids=list(ids), messages=messages, dropped_messages=dropped)
        removed = _drop_oldest_turn(messages)
        if not removed:
            raise PromptTooLong(
                f"the message is {len(ids)} tokens with the system prompt, more than the "
                f"{max_tokens} the model's context leaves for it",
                advice="shorten the message or the system prompt, or lower max new tokens",
            )
        dropped += removed


def encode_completion(
    tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int | None = None
) -> Prompt:
    """Plain completion: the text's own tokens, as pre-training saw them (no chat template,
    no special tokens added); a text longer than `max_tokens` keeps its end."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise PromptTooLong(
            "there is no text to continue", advice="type the beginning of a text to complete"
        )
    if max_tokens is not None and len(ids) > max_tokens:
        return Prompt(ids=ids[-max_tokens:], messages=[], dropped_messages=0)
    return Prompt(ids=ids, messages=[], dropped_messages=0)


def _drop_oldest_turn(messages: list[dict[str, str]]) -> int:
    """Remove the oldest exchange (user turn and the replies after it); 0 if only the new
    message is left."""
    start = 1 if messages and messages[0]["role"] == "system" else 0
    removable = len(messages) - 1 - start  # the last message is the new question
    if removable <= 0:
        return 0
    end = start + 1
    while end < len(messages) - 1 and messages[end]["role"] != "user":
        end += 1
    del messages[start:end]
    return end - start


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system, rest = messages[0]["content"], [dict(message) for message in messages[1:]]
    for message in rest:
        if message["role"] == "user":
            message["content"] = f"{system}\n\n{message['content']}"
            break
    return rest

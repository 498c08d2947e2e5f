"""Chat-template presets: each one puts the loss on the assistant's turns only, with tools,
and the automatic choice follows the vocabulary."""

from __future__ import annotations

import pytest

from studio.engine.encoding import IGNORE_INDEX, encode_conversation, render_conversation
from studio.models.chat_templates import PRESETS, choose_chat_template, stop_token_ids

CALL = {"type": "function", "function": {"name": "lookup", "arguments": {"q": "x"}}}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "First question?"},
    {"role": "assistant", "content": "First answer."},
    {"role": "user", "content": "Look it up."},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "RESULT-42"},
    {"role": "assistant", "content": "It is 42."},
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


@pytest.fixture
def tokenizer():
    from studio.models.tiny import build_tokenizer

    return build_tokenizer()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_on_answers_and_calls_only(tokenizer, name: str) -> None:
    tokenizer.chat_template = PRESETS[name].template
    ids, labels, _ = encode_conversation(tokenizer, CONVERSATION, 4096, True, TOOLS)
    trained = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
    text = tokenizer.decode(ids)
    for part in ("Be brief.", "First question?", "RESULT-42", "lookup"):
        assert part in text
    assert "First answer." in trained and "It is 42." in trained
    assert '"name": "lookup"' in trained  # the call is learned ...
    for part in ("Be brief", "question", "Look it up", "RESULT-42"):
        assert part not in trained  # ... the prompt and the tool's result are not
    assert labels.count(IGNORE_INDEX) > 0
    prompt = render_conversation(tokenizer, CONVERSATION[:2], add_generation_prompt=True)
    # Chat renders the prompt as training saw it, up to the answer.
    assert render_conversation(tokenizer, CONVERSATION[:3]).startswith(prompt)


def test_auto_keeps_an_existing_template_and_picks_by_vocabulary(tokenizer) -> None:
    assert choose_chat_template(tokenizer, "auto") == (None, None)
    tokenizer.chat_template = None
    template, note = choose_chat_template(tokenizer, "auto")
    assert template == PRESETS["chatml"].template and "'chatml' preset" in note
    assert choose_chat_template(tokenizer, "none") == (None, None)


def test_auto_falls_back_to_alpaca_without_chat_markers() -> None:
    class PlainTokenizer:
        chat_template = None

        def get_vocab(self) -> dict[str, int]:
            return {"a": 0, "</s>": 1}

    template, note = choose_chat_template(PlainTokenizer(), "auto")
    assert template == PRESETS["alpaca"].template and "no chat markers" in note
    template, note = choose_chat_template(PlainTokenizer(), "llama3")
    assert template == PRESETS["llama3"].template
    assert "<|start_header_id|>, <|eot_id|> are not tokens of this vocabulary" in note


def test_stop_tokens_come_from_the_template(tokenizer) -> None:
    tokenizer.chat_template = PRESETS["chatml"].template
    assert stop_token_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    tokenizer.chat_template = PRESETS["alpaca"].template
    assert stop_token_ids(tokenizer) == []

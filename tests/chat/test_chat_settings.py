"""Chat settings, conversation building, prompt fitting and incremental decoding (no model)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studio.chat.decoding import IncrementalDecoder
from studio.chat.prompt import PromptTooLong, encode_prompt
from studio.chat.settings import ChatMessage, GenerationSettings, build_messages
from studio.errors import ConfigError
from tests.conftest import REPO


def test_defaults_are_greedy_and_bounds_come_from_the_model() -> None:
    settings = GenerationSettings()
    assert settings.greedy and settings.seed is None and settings.system_prompt == ""
    warmer = settings.with_changes(temperature=0.7, seed=3)
    assert (warmer.temperature, warmer.seed, warmer.greedy) == (0.7, 3, False)
    assert settings.temperature == 0.0  # immutable: with_changes made a copy
    with pytest.raises(ConfigError, match="temperature"):
        settings.with_changes(temperature=3.5)
    with pytest.raises(ConfigError, match="top_p"):
        settings.with_changes(top_p=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        settings.with_changes(max_new_tokens=0)
    with pytest.raises(ConfigError, match="unknown_field"):
        settings.with_changes(unknown_field=1)
    schema = GenerationSettings.model_json_schema()["properties"]
    assert all(field.get("description") for field in schema.values())


def test_messages_put_the_system_prompt_first_once() -> None:
    history = [
        {"role": "system", "content": "old system"},
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello"),
    ]
    assert build_messages(history, "Next?", "Be brief") == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Next?"},
    ]
    assert build_messages(history, "Next?")[0] == {"role": "system", "content": "old system"}
    assert build_messages([], "Q") == [{"role": "user", "content": "Q"}]
    with pytest.raises(ValueError, match="unknown chat role"):
        ChatMessage("robot", "x")  # type: ignore[arg-type]


def test_long_conversations_drop_their_oldest_turns(tiny_tokenizer) -> None:
    history = []
    for number in range(30):
        history += [
            ChatMessage("user", f"Question number {number} about something long enough"),
            ChatMessage("assistant", f"Answer number {number}, also with a few words"),
        ]
    full = encode_prompt(tiny_tokenizer, history, "Last question?", "System text")
    limit = len(full.ids) // 3
    fitted = encode_prompt(tiny_tokenizer, history, "Last question?", "System text", limit)
    assert len(fitted.ids) <= limit
    assert fitted.dropped_messages > 0 and fitted.dropped_messages % 2 == 0
    assert fitted.messages[0] == {"role": "system", "content": "System text"}
    assert fitted.messages[1]["role"] == "user"  # still starts with a question
    assert fitted.messages[-1] == {"role": "user", "content": "Last question?"}
    with pytest.raises(PromptTooLong):
        encode_prompt(tiny_tokenizer, [], "word " * 400, "", 50)


def test_prompt_ids_match_how_training_encodes(tiny_tokenizer) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert encode_prompt(tiny_tokenizer, [], messages[0]["content"]).ids == expected


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "Grüße aus Köln — 東京とパリ 🚀 done",
        "spaces   and\nnew lines\t\tand  ",
    ],
)
def test_incremental_decoding_concatenates_to_the_whole_text(tiny_tokenizer, text: str) -> None:
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tiny_tokenizer)
    pieces = [decoder.add([token]) for token in ids]
    pieces.append(decoder.flush())
    pieces = [piece for piece in pieces if piece]
    assert "".join(pieces) == tiny_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(pieces) > 1
    assert not any("\ufffd" in piece for piece in pieces)  # split characters were held back


def test_special_tokens_are_not_shown(tiny_tokenizer) -> None:
    decoder = IncrementalDecoder(tiny_tokenizer)
    ids = tiny_tokenizer("Paris.", add_special_tokens=False)["input_ids"]
    end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = decoder.add(ids) + decoder.add([end]) + decoder.flush()
    assert text == "Paris."


def test_chat_imports_neither_torch_nor_textual() -> None:
    code = (
        "import studio.chat, studio.chat.model, studio.commands.chat, sys; "
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    loaded = set(result.stdout.split())
    assert not {"torch", "transformers", "peft", "textual"} & loaded

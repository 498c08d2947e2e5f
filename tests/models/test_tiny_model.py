from __future__ import annotations

import hashlib
from pathlib import Path

from studio.models.tiny import CHAT_TEMPLATE, build_model, build_tokenizer


def test_tiny_model_is_cached_and_complete(tiny_model_dir: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (tiny_model_dir / name).exists()


def test_build_is_deterministic() -> None:
    first, second = build_tokenizer(), build_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    weights = [
        hashlib.sha256(build_model(first).lm_head.weight.detach().numpy().tobytes()).hexdigest()
        for _ in range(2)
    ]
    assert weights[0] == weights[1]


def test_chat_template_marks_assistant_turns(tiny_tokenizer) -> None:
    assert tiny_tokenizer.chat_template == CHAT_TEMPLATE
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "我只剩一颗心脏了，还能活吗？"},
        {"role": "assistant", "content": "Humans have one heart."},
    ]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    round_trip = tiny_tokenizer.decode(tiny_tokenizer(text)["input_ids"])
    assert round_trip == text

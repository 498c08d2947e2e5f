from __future__ import annotations

from studio.engine.encoding import IGNORE_INDEX, PaddingCollator, encode_records


def test_sft_labels_cover_only_assistant_tokens(tiny_tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And 3 plus 3?"},
        {"role": "assistant", "content": "It is 6."},
    ]
    features, stats = encode_records(
        tiny_tokenizer, [{"messages": messages}], "conversation", 512, assistant_only=True
    )
    ids, labels = features[0]["input_ids"], features[0]["labels"]
    trained = tiny_tokenizer.decode(
        [t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    )
    assert "It is 4.<|im_end|>" in trained and "It is 6.<|im_end|>" in trained
    assert "What is" not in trained and "Be brief" not in trained and "user" not in trained
    assert stats.target_tokens < stats.tokens


def test_all_tokens_trained_when_assistant_only_is_off(tiny_tokenizer) -> None:
    record = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    }
    features, _ = encode_records(
        tiny_tokenizer, [record], "conversation", 512, assistant_only=False
    )
    assert features[0]["labels"] == features[0]["input_ids"]


def test_truncation_is_counted_and_empty_targets_dropped(tiny_tokenizer) -> None:
    long_prompt = "word " * 200
    records = [
        {
            "messages": [
                {"role": "user", "content": long_prompt},
                {"role": "assistant", "content": "ok"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello " * 50},
            ]
        },
    ]
    features, stats = encode_records(
        tiny_tokenizer, records, "conversation", 32, assistant_only=True
    )
    assert stats.truncated == 2
    assert stats.dropped_no_target == 1
    assert len(features) == 1 and len(features[0]["input_ids"]) == 32
    assert "truncated" in stats.summary() and "dropped" in stats.summary()


def test_text_is_chunked_to_max_length(tiny_tokenizer) -> None:
    features, _ = encode_records(tiny_tokenizer, [{"text": "The sun is a star. " * 40}], "text", 50)
    assert len(features) > 1
    assert all(len(f["input_ids"]) <= 50 for f in features)
    assert features[-1]["input_ids"][-1] == tiny_tokenizer.eos_token_id


def test_collator_pads_and_counts_real_tokens() -> None:
    collator = PaddingCollator(pad_token_id=0)
    batch = collator(
        [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert collator.tokens_seen == 4


def test_text_chunks_need_a_token_to_predict(tiny_tokenizer) -> None:
    text = "The sun is a star. " * 10
    length = len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # with EOS
    # A last chunk of one token has nothing before it to predict from: dropped, not trained.
    features, stats = encode_records(tiny_tokenizer, [{"text": text}], "text", length - 1)
    assert len(features) == 1 and stats.dropped_no_target == 1
    assert stats.split_documents == 1 and "1 documents split" in stats.summary()
    assert stats.target_tokens == length - 2  # every token but the first is a target

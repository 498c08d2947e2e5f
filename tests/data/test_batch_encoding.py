"""Batch encoding's shortcuts give exactly what the plain calls give (issue 17): the Rust
tokenizer called directly, the flat arrays, and a worker that never loads pyarrow."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from studio.engine import batch_encoding, parallel_encoding
from studio.engine.batch_encoding import encode_batch
from tests.conftest import REPO
from tests.support.encodings import reference_rows

SAMPLE_DATA = REPO / "sample_data"
CONVERSATIONS = ["alpaca_en.jsonl", "sharegpt_en.json", "messages_en.jsonl", "tools_en.jsonl"]


def sample_records(name: str, training_type: str = "sft") -> tuple[str, list[dict[str, Any]]]:
    from studio.data.loading import prepare_file
    from studio.data.training_fit import fit_training_type

    records, report = prepare_file(str(SAMPLE_DATA / name))
    kind, fitted = fit_training_type(records, report, training_type)
    return kind, [item.record for item in fitted]


def corpus() -> list[str]:
    from studio.models import tiny

    return (Path(tiny.__file__).parent / "tiny_corpus.txt").read_text(encoding="utf-8").split("\n")


def byte_level_bpe() -> Any:
    """A byte-level BPE of another vocabulary and a Llama-3-like template (bos_token in it)
    that renders tools and tool calls itself (such conversations are rendered one by one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )
    tokenizer.chat_template = (
        "{{- bos_token }}"
        "{%- if tools %}{{- 'Tools: ' + tools | tojson + '<|eot_id|>' }}{%- endif %}"
        "{%- for m in messages %}"
        "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] }}"
        "{%- if m.tool_calls %}{{- ' Calls: ' + m.tool_calls | tojson }}{%- endif %}"
        "{{- '<|eot_id|>' }}{%- endfor %}"
        "{%- if add_generation_prompt %}"
        "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
    )
    return tokenizer


def word_level() -> Any:
    """Whole words split on whitespace and punctuation (unknown words become [UNK]): offsets
    that skip the spaces, unlike byte-level ones."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"], show_progress=False)
    words.train_from_iterator(corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, eos_token="</s>", unk_token="[UNK]")
    tokenizer.chat_template = (
        "{%- for m in messages %}{%- if m['role'] == 'assistant' %}"
        "{{- 'ASSISTANT: ' + m['content'] + ' </s>\\n' }}"
        "{%- else %}{{- m['role'] | upper + ': ' + m['content'] + '\\n' }}{%- endif %}"
        "{%- endfor %}{%- if add_generation_prompt %}{{- 'ASSISTANT:' }}{%- endif %}"
    )
    return tokenizer


@pytest.fixture(scope="module", params=["tiny", "byte-level BPE", "word level"])
def tokenizer(request: pytest.FixtureRequest, tiny_tokenizer: Any) -> Any:
    return {
        "tiny": lambda: tiny_tokenizer,
        "byte-level BPE": byte_level_bpe,
        "word level": word_level,
    }[request.param]()


def encoded(
    tokenizer: Any,
    records: list[dict[str, Any]],
    kind: str,
    max_length: int,
    assistant_only: bool = True,
) -> Any:
    batch, stats = encode_batch(tokenizer, records, kind, max_length, assistant_only)
    return batch.column("input_ids"), batch.column("labels"), stats


def one_by_one(
    tokenizer: Any, records: list[dict[str, Any]], kind: str, max_length: int
) -> tuple[list[list[int]], list[list[int]]]:
    """The examples record by record through transformers' own call (encoding.py), as
    (ids column, labels column)."""
    expected = reference_rows(tokenizer, records, kind, max_length)
    return [ids for ids, _ in expected], [labels for _, labels in expected]


@pytest.mark.parametrize("max_length", [40, 2048])
@pytest.mark.parametrize("name", [*CONVERSATIONS, "pretrain_en.txt"])
def test_the_direct_tokenizer_call_gives_what_transformers_gives(
    tokenizer: Any, name: str, max_length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, records = sample_records(name, "pretrain" if name.endswith(".txt") else "sft")
    assert batch_encoding._plain_backend(tokenizer) is not None  # the shortcut is taken
    direct = encoded(tokenizer, records, kind, max_length)
    every_token = encoded(tokenizer, records, kind, max_length, assistant_only=False)
    with monkeypatch.context() as patch:
        patch.setattr(batch_encoding, "_plain_backend", lambda tokenizer: None)
        through_transformers = encoded(tokenizer, records, kind, max_length)
        every_token_through_transformers = encoded(
            tokenizer, records, kind, max_length, assistant_only=False
        )
    assert direct == through_transformers
    # Without offsets (every token trained on) the call that does not track them.
    assert every_token == every_token_through_transformers
    assert every_token[0] == every_token[1]
    assert direct[:2] == one_by_one(tokenizer, records, kind, max_length)
    ids, _, stats = direct
    assert stats.examples == len(ids) and stats.tokens == sum(map(len, ids))
    if kind == "conversation":
        assert stats.examples + stats.dropped_no_target == len(records)
    if max_length == 40:  # cut: some records lose their answers (tools: all of them)
        assert stats.truncated or stats.split_documents
    else:
        assert stats.examples and not stats.truncated and not stats.dropped_no_target
        if kind == "conversation":  # the prompts are masked, the answers are not
            assert 0 < stats.target_tokens < stats.tokens


def test_a_backend_with_truncation_or_padding_goes_through_transformers() -> None:
    kind, records = sample_records("sharegpt_en.json")
    expected = encoded(byte_level_bpe(), records, kind, 2048)
    assert max(map(len, expected[0])) > 16
    truncating, padding = byte_level_bpe(), byte_level_bpe()
    truncating.backend_tokenizer.enable_truncation(max_length=16)
    padding.backend_tokenizer.enable_padding(pad_id=0, pad_token="<|eot_id|>")
    for tokenizer in (truncating, padding):
        # Called directly, these backends would cut or pad every text: transformers' call
        # switches both off for `truncation=False` (the ids stay whole, unpadded).
        assert batch_encoding._plain_backend(tokenizer) is None
        assert encoded(tokenizer, records, kind, 2048) == expected


def test_split_special_tokens_goes_through_transformers(tiny_tokenizer: Any) -> None:
    import copy

    kind, records = sample_records("alpaca_en.jsonl")
    splitting = copy.deepcopy(tiny_tokenizer)
    splitting.split_special_tokens = True  # "<|im_start|>" is then text, not one token
    assert batch_encoding._plain_backend(splitting) is None
    ids, labels, _ = encoded(splitting, records, kind, 2048)
    assert (ids, labels) == one_by_one(splitting, records, kind, 2048)
    start = tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert start not in ids[0] and start in encoded(tiny_tokenizer, records, kind, 2048)[0][0]


def test_an_arrow_batch_wraps_the_arrays_without_a_copy(tiny_tokenizer: Any) -> None:
    kind, records = sample_records("sharegpt_en.json")
    batch, _ = encode_batch(tiny_tokenizer, records, kind, 64, True)
    arrow = parallel_encoding._record_batch(batch)
    assert arrow.schema == parallel_encoding._schema()
    assert arrow.column("input_ids").to_pylist() == batch.column("input_ids")
    assert arrow.column("labels").to_pylist() == batch.column("labels")
    values = arrow.column("input_ids").values.buffers()[1]
    assert values.address == batch.input_ids.ctypes.data
    empty, _ = encode_batch(tiny_tokenizer, [], kind, 64, True)
    assert parallel_encoding._record_batch(empty).num_rows == 0


def test_a_worker_encodes_without_pyarrow_pandas_or_torch(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    kind, records = sample_records("alpaca_en.jsonl")
    packed = parallel_encoding.PackedRecords.pack(records)
    assert packed is not None
    tokenizer_file, lines_file, result_file = (tmp_path / name for name in "tlr")
    tokenizer_file.write_bytes(pickle.dumps(tiny_tokenizer))
    lines_file.write_bytes(pickle.dumps(packed.packed))
    # What a spawned worker runs: start (unpickle the tokenizer), then encode packed records.
    code = f"""
import json, pickle, sys
from pathlib import Path
from studio.engine import parallel_encoding
parallel_encoding._start_worker(Path({str(tokenizer_file)!r}).read_bytes())
lines = pickle.loads(Path({str(lines_file)!r}).read_bytes())
result = parallel_encoding._worker_encode(lines, {kind!r}, 128, True)
Path({str(result_file)!r}).write_bytes(pickle.dumps(result))
print(json.dumps(sorted(n for n in ("pyarrow", "pandas", "torch", "numpy") if n in sys.modules)))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert json.loads(run.stdout.splitlines()[-1]) == ["numpy"]  # it did encode, with numpy
    batch, stats = pickle.loads(result_file.read_bytes())
    here, here_stats = encode_batch(tiny_tokenizer, records, kind, 128, True)
    assert stats == here_stats and stats.examples == len(records)
    assert batch.column("input_ids") == here.column("input_ids")
    assert batch.column("labels") == here.column("labels")


def test_a_batch_mixing_tools_and_plain_conversations_renders_each_as_alone() -> None:
    # Those with tools are rendered one by one, the others in one template call: in order.
    tokenizer = byte_level_bpe()
    with_tools = sample_records("tools_en.jsonl")[1]
    plain = sample_records("sharegpt_en.json")[1] + sample_records("alpaca_en.jsonl")[1][:6]
    paired = zip(plain[:6], with_tools[:6], strict=True)
    records = [record for pair in paired for record in pair] + plain[6:]
    assert any(record.get("tools") for record in records)
    ids, labels, _ = encoded(tokenizer, records, "conversation", 2048)
    assert (ids, labels) == one_by_one(tokenizer, records, "conversation", 2048)
    assert len(ids) == len(records)

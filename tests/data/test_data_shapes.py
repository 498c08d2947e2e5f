"""Dataset shapes users already have (LLaMA-Factory demos, OpenAI exports, tool calling, KTO),
read from files the tests write: record counts, canonical records, formatted text, loss mask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.config import DataSettings
from studio.data import load_training_data
from studio.data.loading import prepare_file
from studio.engine.encoding import IGNORE_INDEX, encode_conversation
from studio.errors import DataError
from studio.models.chat_templates import PRESETS
from tests.support.files import write_jsonl


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


@pytest.fixture(scope="module")
def chatml_tokenizer():
    from studio.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template = PRESETS["chatml"].template
    return tokenizer


def trained_text(tokenizer: Any, record: dict[str, Any]) -> tuple[str, str]:
    """(whole formatted text, the part with loss on it) of a conversation record."""
    ids, labels, _ = encode_conversation(
        tokenizer, record["messages"], 4096, True, record.get("tools")
    )
    trained = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    return tokenizer.decode(ids), tokenizer.decode(trained)


# ---------------------------------------------------------------- preference shapes


def test_sharegpt_style_preference(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "dpo_en_demo.jsonl",
        [
            {
                "conversations": [{"from": "human", "value": f"Question {n}?"}],
                "chosen": {"from": "gpt", "value": f"Good answer {n}."},
                "rejected": {"from": "gpt", "value": f"Bad answer {n}."},
            }
            for n in range(3)
        ]
        + [{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt"}}],
    )
    records, report = prepare_file(path)
    assert (report.format, report.read, report.kept) == ("preference", 4, 3)
    assert records[0].record == {
        "prompt": [user("Question 0?")],
        "chosen": [assistant("Good answer 0.")],
        "rejected": [assistant("Bad answer 0.")],
    }
    assert [str(p) for p in report.problems] == [
        f"{path}:4: missing_field: chosen[0] has no 'value'"
    ]


def test_chosen_messages_and_rejected_messages(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "chosen_messages": [user("Hi?"), assistant("Hello!")],
                "rejected_messages": [user("Hi?"), assistant("Go away.")],
            }
        ],
    )
    records, report = prepare_file(path)
    assert (report.format, report.kept) == ("preference", 1)
    assert records[0].record == {
        "prompt": [user("Hi?")],
        "chosen": [assistant("Hello!")],
        "rejected": [assistant("Go away.")],
    }


def test_alpaca_style_preference(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "alpaca_pairs.jsonl",
        [
            {"instruction": "Translate.", "input": "cat", "chosen": "chat", "rejected": "chien"},
            {"instruction": "Add.", "input": "", "chosen": "4", "rejected": "5", "system": "S"},
        ],
    )
    records, report = prepare_file(path)
    assert (report.format, report.kept) == ("preference", 2)
    assert records[0].record["prompt"] == [user("Translate.\n\ncat")]
    assert records[1].record == {
        "prompt": [{"role": "system", "content": "S"}, user("Add.")],
        "chosen": [assistant("4")],
        "rejected": [assistant("5")],
    }


def test_preference_messages_as_strings_and_lists_for_dpo(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed_pairs.jsonl",
        [
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
            {"prompt": [user("3+3?")], "chosen": [assistant("6")], "rejected": [assistant("7")]},
        ],
    )
    data = load_training_data(DataSettings(path=str(path)), "dpo")
    assert data.kind == "preference" and len(data.train) == 2


# ---------------------------------------------------------------- content parts


def test_content_part_lists_keep_text_and_report_images(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "parts.jsonl",
        [
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "http://x/cat.png"}},
                            {"type": "text", "text": "What is "},
                            {"type": "text", "text": "this?"},
                        ],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
                ]
            },
            {
                "conversations": [
                    {"from": "human", "value": [{"type": "text", "value": "Hi"}]},
                    {"from": "gpt", "value": [{"type": "text", "value": "Hello"}]},
                ]
            },
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}, assistant("x")]},
        ],
    )
    records, report = prepare_file(path, data_format="messages")
    assert (report.read, report.kept) == (3, 1)
    assert records[0].record == {"messages": [user("What is this?"), assistant("A cat.")]}
    # The record with only an audio part has no text left: dropped with its line.
    assert any(p.line == 3 and p.reason == "empty_field" for p in report.problems)
    assert any("image_url" in note and "audio" in note for note in report.notes)
    # The same parts written with `value`, in sharegpt turns.
    records, report = prepare_file(path, data_format="sharegpt")
    assert records[0].record == {"messages": [user("Hi"), assistant("Hello")]}


# ---------------------------------------------------------------- tool calling

PARIS_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_llama_factory_tool_calls(tmp_path: Path, chatml_tokenizer) -> None:
    path = write_jsonl(
        tmp_path / "glaive_toolcall_en_demo.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": "Weather in Paris?"},
                    {
                        "from": "function_call",
                        "value": json.dumps(PARIS_CALL),
                    },
                    {"from": "observation", "value": '{"sky": "sunny"}'},
                    {"from": "gpt", "value": "It is sunny in Paris."},
                ],
                "tools": json.dumps([WEATHER_TOOL]),
            },
            {
                "conversations": [
                    {"from": "human", "value": "x"},
                    {"from": "observation", "value": "result without a call"},
                    {"from": "gpt", "value": "y"},
                ]
            },
        ],
    )
    records, report = prepare_file(path)
    assert (report.format, report.read, report.kept) == ("sharegpt", 2, 1)
    (problem,) = report.problems
    assert (problem.line, problem.reason) == (2, "bad_role")
    assert "tool results must follow" in problem.detail
    record = records[0].record
    assert record["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": PARIS_CALL}],
    }
    assert record["messages"][2] == {"role": "tool", "content": '{"sky": "sunny"}'}
    assert record["tools"] == [{"type": "function", "function": WEATHER_TOOL}]
    text, trained = trained_text(chatml_tokenizer, record)
    assert "<tools>" in text and '"name": "get_weather"' in text  # tools reached the template
    assert '<tool_response>\n{"sky": "sunny"}\n</tool_response>' in text
    # Loss on the call and on the answer; not on the tool's result, the tools or the question.
    assert trained == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\nIt is sunny in Paris.<|im_end|>\n"
    )


def test_openai_tool_calls(tmp_path: Path, chatml_tokenizer) -> None:
    path = write_jsonl(
        tmp_path / "openai_tools.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "You help."},
                    user("Weather in Rome and Oslo?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "get_weather",
                                    "arguments": json.dumps({"city": city}),
                                },
                            }
                            for city in ("Rome", "Oslo")
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "ROME: 12mm"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "OSLO: -3C"},
                    assistant("Rain in Rome, snow in Oslo."),
                ],
                "tools": [{"type": "function", "function": WEATHER_TOOL}],
            }
        ],
    )
    records, report = prepare_file(path)
    assert (report.format, report.kept) == ("messages", 1)
    record = records[0].record
    assert [m["role"] for m in record["messages"]] == [
        "system", "user", "assistant", "tool", "tool", "assistant"
    ]  # fmt: skip
    assert record["messages"][2]["tool_calls"][1]["function"]["arguments"] == {"city": "Oslo"}
    text, trained = trained_text(chatml_tokenizer, record)
    assert "ROME: 12mm" in text and "OSLO: -3C" in text
    assert "ROME" not in trained and "OSLO" not in trained and "Weather" not in trained
    assert trained.count("<tool_call>") == 2
    assert trained.endswith("Rain in Rome, snow in Oslo.<|im_end|>\n")


def test_tool_calls_on_a_template_without_tool_support(tiny_tokenizer) -> None:
    record = {
        "messages": [
            user("Weather?"),
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "w", "arguments": {"c": 1}}}
                ],
            },
            {"role": "tool", "content": "sunny"},
            assistant("Sunny."),
        ],
        "tools": [{"type": "function", "function": WEATHER_TOOL}],
    }
    text, trained = trained_text(tiny_tokenizer, record)
    assert "get_weather" in text  # the definitions went into a system prompt
    assert trained == (
        '<tool_call>\n{"name": "w", "arguments": {"c": 1}}\n</tool_call><|im_end|>\n'
        "Sunny.<|im_end|>\n"
    )


# ---------------------------------------------------------------- KTO


def test_kto_messages_with_label(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "kto_en_demo.jsonl",
        [
            {"messages": [user("2+2?"), assistant("4")], "label": True},
            {"messages": [user("2+3?"), assistant("6")], "label": False},
            {"prompt": "3+3?", "completion": "6", "label": "true"},
            {"messages": [user("q"), assistant("a")], "label": "maybe"},
            {"completion": "lonely answer", "label": True},
        ],
    )
    records, report = prepare_file(path)
    assert (report.format, report.kind, report.read, report.kept) == ("kto", "kto", 5, 3)
    assert [r.record for r in records] == [
        {"prompt": [user("2+2?")], "completion": [assistant("4")], "label": True},
        {"prompt": [user("2+3?")], "completion": [assistant("6")], "label": False},
        {"prompt": [user("3+3?")], "completion": [assistant("6")], "label": True},
    ]
    assert [(p.line, p.reason, p.field) for p in report.problems] == [
        (4, "wrong_type", "label"),
        (5, "missing_field", "prompt"),
    ]


def test_kto_file_given_to_sft_is_refused_with_advice(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "kto.jsonl", [{"messages": [user("2+3?"), assistant("6")], "label": False}]
    )
    for training_type in ("sft", "dpo"):
        with pytest.raises(DataError) as caught:
            load_training_data(DataSettings(path=str(path)), training_type)
        assert "labelled" in caught.value.message
        assert "training_type: kto" in (caught.value.advice or "")


def test_preference_pairs_become_good_and_bad_answers_for_kto(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}])
    data = load_training_data(DataSettings(path=str(path)), "kto")
    assert data.kind == "kto"
    assert [(r["completion"][0]["content"], r["label"]) for r in data.train] == [
        ("4", True),
        ("5", False),
    ]


def test_existing_formats_keep_their_file_line_reasons(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [{"instruction": "q", "output": "a"}, {"instruction": "q"}, {"messages": [user("x")]}],
    )
    _, report = prepare_file(path)
    assert report.problem_lines() == [
        f"{path}:2: missing_field: 'output' is missing",
        f"{path}:3: unknown_format: looks like messages, but this file is alpaca "
        "(instruction, input (optional), output)",
    ]


def test_explained_examples_are_read_as_their_format() -> None:
    from studio.commands.config import explain_formats
    from studio.data.formats import FORMATS, convert_record, detect_record_format

    page = explain_formats()
    parsed = 0
    for fmt in FORMATS.values():
        for example in (fmt.example, *fmt.more_examples):
            assert f"    {example}" in page
            try:
                record = json.loads(example)
            except json.JSONDecodeError:
                continue  # abridged with "..."
            assert detect_record_format(record) == fmt.name, example
            convert_record(record, fmt.name)
            parsed += 1
    assert parsed >= 10


def test_data_check_shows_what_records_became(tmp_path: Path, capsys) -> None:
    from studio.data import check_main

    folder = tmp_path / "shards"
    folder.mkdir()
    write_jsonl(
        folder / "train-0.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": "Weather?"},
                    {"from": "function_call", "value": json.dumps(PARIS_CALL)},
                    {"from": "observation", "value": "sunny"},
                    {"from": "gpt", "value": "Sunny."},
                ],
                "tools": [WEATHER_TOOL],
            }
        ],
    )
    assert check_main(str(folder)) == 0
    out = capsys.readouterr().out
    assert "first 1 records as they became (conversation):" in out
    assert f"{folder}/train-0.jsonl:1\n  tools: get_weather\n  user: Weather?\n" in out
    assert '  assistant: [calls get_weather({"city": "Paris"})]\n  tool: sunny\n' in out


def test_config_preview_renders_tool_calls_and_labels(chatml_tokenizer) -> None:
    from studio.ui.data.dataset_preview import _render

    record = {
        "messages": [
            user("Weather?"),
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": PARIS_CALL}]},
            {"role": "tool", "content": "sunny"},
            assistant("Sunny."),
        ],
        "tools": [{"type": "function", "function": WEATHER_TOOL}],
    }  # fmt: skip
    shown = _render(record, "conversation", chatml_tokenizer)
    assert "<tools>" in shown.text and "<tool_call>" in shown.text
    assert "<tool_response>\nsunny\n</tool_response>" in shown.text
    assert shown.tokens is not None and shown.tokens > 0
    labelled = {"prompt": [user("2+3?")], "completion": [assistant("6")], "label": False}
    assert _render(labelled, "kto", None).text == "user: 2+3?\nanswer (bad): 6"

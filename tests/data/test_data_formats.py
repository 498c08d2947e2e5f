"""Record formats: detection, conversion to canonical records, and each kind of bad record."""

from __future__ import annotations

from typing import Any

import pytest

from studio.data.formats import RecordIssue, convert_record, detect_record_format


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"instruction": "q", "output": "a"}, "alpaca"),
        ({"conversations": []}, "sharegpt"),
        ({"messages": []}, "messages"),
        ({"prompt": "p", "chosen": "c", "rejected": "r"}, "preference"),
        ({"chosen": [], "rejected": []}, "preference"),
        ({"text": "t"}, "text"),
        ({"question": "q", "answer": "a"}, None),
        (["not", "a", "record"], None),
    ],
)
def test_detect_record_format(record: Any, expected: str | None) -> None:
    assert detect_record_format(record) == expected


def test_alpaca_joins_input_and_adds_system_and_history() -> None:
    record = {
        "instruction": "Translate.",
        "input": "hello",
        "output": "bonjour",
        "system": "You translate.",
        "history": [["hi", "hey"]],
    }
    assert convert_record(record, "alpaca") == {
        "messages": [
            system("You translate."),
            user("hi"),
            assistant("hey"),
            user("Translate.\n\nhello"),
            assistant("bonjour"),
        ]
    }


def test_alpaca_without_input_and_with_default_system_prompt() -> None:
    record = {"instruction": "q", "input": "", "output": "a"}
    assert convert_record(record, "alpaca", system_prompt="Be brief.") == {
        "messages": [system("Be brief."), user("q"), assistant("a")]
    }


def test_sharegpt_maps_roles_and_top_level_system() -> None:
    record = {
        "system": "sys",
        "conversations": [
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
            {"from": "user", "value": "q2"},
            {"from": "model", "value": "a2"},
        ],
    }
    assert convert_record(record, "sharegpt") == {
        "messages": [system("sys"), user("q1"), assistant("a1"), user("q2"), assistant("a2")]
    }


def test_sharegpt_system_turn_inside_conversations_wins_over_default() -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "own"},
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a"},
        ]
    }
    converted = convert_record(record, "sharegpt", system_prompt="default")
    assert converted["messages"][0] == system("own")


def test_openai_messages_and_text_parts() -> None:
    record = {
        "messages": [
            system("s"),
            {
                "role": "user",
                "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "y"}],
            },
            assistant("a"),
        ]
    }
    assert convert_record(record, "messages") == {
        "messages": [system("s"), user("hey"), assistant("a")]
    }


def test_preference_strings() -> None:
    record = {"prompt": "p", "chosen": "c", "rejected": "r"}
    assert convert_record(record, "preference") == {
        "prompt": [user("p")],
        "chosen": [assistant("c")],
        "rejected": [assistant("r")],
    }


def test_preference_whole_conversations_keep_only_the_final_answer() -> None:
    record = {
        "prompt": [user("p")],
        "chosen": [user("p"), assistant("c")],
        "rejected": [user("p"), assistant("r")],
    }
    converted = convert_record(record, "preference")
    assert converted["chosen"] == [assistant("c")]
    assert converted["rejected"] == [assistant("r")]
    assert converted["prompt"] == [user("p")]


def test_preference_without_prompt_takes_the_shared_prefix() -> None:
    record = {
        "chosen": [system("s"), user("p"), assistant("c")],
        "rejected": [system("s"), user("p"), assistant("r")],
    }
    assert convert_record(record, "preference") == {
        "prompt": [system("s"), user("p")],
        "chosen": [assistant("c")],
        "rejected": [assistant("r")],
    }


def test_text() -> None:
    assert convert_record({"text": "hello"}, "text") == {"text": "hello"}


@pytest.mark.parametrize(
    ("record", "data_format", "reason", "field"),
    [
        ({"instruction": "q"}, "alpaca", "missing_field", "output"),
        ({"instruction": " ", "output": "a"}, "alpaca", "empty_field", "instruction"),
        ({"instruction": "q", "output": 5}, "alpaca", "wrong_type", "output"),
        (
            {"instruction": "q", "output": "a", "history": [["only one"]]},
            "alpaca",
            "wrong_type",
            "history",
        ),
        ({"instruction": "q", "output": "a", "input": ["x"]}, "alpaca", "wrong_type", "input"),
        ("just a string", "alpaca", "wrong_type", None),
        ({"conversations": []}, "sharegpt", "empty_field", "conversations"),
        ({"conversations": "hi"}, "sharegpt", "wrong_type", "conversations"),
        (
            {"conversations": [{"from": "human", "value": "q"}, {"from": "tool", "value": "x"}]},
            "sharegpt",
            "bad_role",
            "conversations",
        ),
        (
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
            "sharegpt",
            "missing_field",
            "conversations",
        ),
        ({"messages": [user("q")]}, "messages", "bad_role", "messages"),
        ({"messages": [assistant("a"), user("q")]}, "messages", "bad_role", "messages"),
        ({"messages": [user("q"), user("q2"), assistant("a")]}, "messages", "bad_role", "messages"),
        (
            {"messages": [user("q"), assistant("a"), system("late")]},
            "messages",
            "bad_role",
            "messages",
        ),
        ({"messages": [user("q"), assistant("  ")]}, "messages", "empty_field", "messages"),
        (
            {"messages": [{"role": "user", "content": 3}, assistant("a")]},
            "messages",
            "wrong_type",
            "messages",
        ),
        (
            {"messages": [user("q"), {"role": "critic", "content": "x"}]},
            "messages",
            "bad_role",
            "messages",
        ),
        ({"messages": [{"role": ["user"], "content": "q"}]}, "messages", "bad_role", "messages"),
        ({"messages": [{"role": "tool", "content": "q"}]}, "messages", "bad_role", "messages"),
        ({"prompt": "p", "chosen": "c"}, "preference", "missing_field", "rejected"),
        ({"prompt": "", "chosen": "c", "rejected": "r"}, "preference", "empty_field", "prompt"),
        ({"prompt": "p", "chosen": 1, "rejected": "r"}, "preference", "wrong_type", "chosen"),
        (
            {"prompt": "p", "chosen": [user("c")], "rejected": "r"},
            "preference",
            "bad_role",
            "chosen",
        ),
        (
            {"prompt": [assistant("p")], "chosen": "c", "rejected": "r"},
            "preference",
            "bad_role",
            "prompt",
        ),
        ({"chosen": "c", "rejected": "r"}, "preference", "missing_field", "prompt"),
        ({"text": ""}, "text", "empty_field", "text"),
        ({"text": None}, "text", "missing_field", "text"),
    ],
)
def test_bad_records_raise_the_right_reason(
    record: Any, data_format: str, reason: str, field: str | None
) -> None:
    with pytest.raises(RecordIssue) as caught:
        convert_record(record, data_format)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert caught.value.detail

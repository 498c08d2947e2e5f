"""Reading dataset files: every file type, line numbers, and whole-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data import read_dataset_file
from studio.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_records_carry_their_line_and_bad_lines_are_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n{"text": "b"}\n{oops\n{"text": "c"}\n')
    raw = read_dataset_file(path)
    assert [(r.line, r.value["text"]) for r in raw.records] == [(1, "a"), (3, "b"), (5, "c")]
    assert [(p.line, p.reason) for p in raw.problems] == [(4, "bad_json")]
    assert raw.read == 4


def test_json_array_lines_are_where_each_record_starts(tmp_path: Path) -> None:
    text = '[\n  {"text": "a"},\n  {\n    "text": "b"\n  },\n\n  {"text": "c"}\n]\n'
    raw = read_dataset_file(write(tmp_path / "d.json", text))
    assert [r.line for r in raw.records] == [2, 3, 7]


def test_json_object_holding_one_list_of_records(tmp_path: Path) -> None:
    text = '{"version": "1",\n "data": [\n  {"text": "a"},\n  {"text": "b"}\n ]\n}'
    raw = read_dataset_file(write(tmp_path / "d.json", text))
    assert [(r.line, r.value) for r in raw.records] == [(3, {"text": "a"}), (4, {"text": "b"})]


def test_json_single_record_object_is_refused_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", json.dumps({"messages": [{"role": "user"}]}))
    with pytest.raises(DataError, match="array of records") as caught:
        read_dataset_file(path)
    assert caught.value.advice


def test_invalid_json_file_names_the_line_and_suggests_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(DataError) as caught:
        read_dataset_file(path)
    assert caught.value.location == f"{path}:2"
    assert ".jsonl" in (caught.value.advice or "")


def test_csv_lines_count_the_header_and_multiline_cells(tmp_path: Path) -> None:
    text = 'instruction,input,output\nq1,,a1\n"q2\nsecond line",,a2\n\nq3,,a3\nq4,x,a4,extra\n'
    raw = read_dataset_file(write(tmp_path / "d.csv", text))
    assert [(r.line, r.value["instruction"]) for r in raw.records] == [
        (2, "q1"),
        (3, "q2\nsecond line"),
        (6, "q3"),
    ]
    assert [(p.line, p.reason) for p in raw.problems] == [(7, "unknown_format")]


def test_csv_cells_with_json_conversations_are_parsed(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path = tmp_path / "d.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["messages"], [json.dumps(messages)]])
    raw = read_dataset_file(path)
    assert raw.records[0].value == {"messages": messages}


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    from pyarrow import parquet

    path = tmp_path / "d.parquet"
    parquet.write_table(pyarrow.table({"text": ["a", "b"]}), path)
    raw = read_dataset_file(path)
    assert [(r.line, r.value) for r in raw.records] == [(1, {"text": "a"}), (2, {"text": "b"})]


def test_corrupt_parquet_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="Parquet"):
        read_dataset_file(path)


def test_text_paragraphs_with_their_first_line(tmp_path: Path) -> None:
    text = "First para\ncontinues.\n\n\nSecond para.\n   \nThird.\n"
    raw = read_dataset_file(write(tmp_path / "d.txt", text))
    assert [(r.line, r.value["text"]) for r in raw.records] == [
        (1, "First para\ncontinues."),
        (5, "Second para."),
        (7, "Third."),
    ]


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes('\ufeff{"text": "a"}\n'.encode())
    assert read_dataset_file(path).records[0].value == {"text": "a"}


def test_missing_file_gives_path_and_advice(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as caught:
        read_dataset_file(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in caught.value.message
    assert caught.value.advice


def test_relative_path_is_read_from_base_dir_and_shown_as_written(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", '{"text": "a"}\n')
    raw = read_dataset_file("d.jsonl", base_dir=tmp_path)
    assert raw.path == "d.jsonl"


def test_wrong_extension_lists_supported_types(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported") as caught:
        read_dataset_file(write(tmp_path / "d.xlsx", "x"))
    assert ".jsonl" in (caught.value.advice or "")


def test_folder_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder"):
        read_dataset_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="empty"):
        read_dataset_file(path)


def test_json_empty_array_has_no_records(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no records"):
        read_dataset_file(write(tmp_path / "d.json", "[]"))


def test_encoding_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="UTF-8") as caught:
        read_dataset_file(path)
    assert caught.value.location == f"{path}:2"

"""A large file's records are encoded by worker processes while it is still being read
(issue 17): the same examples as encoding after the read, and nothing left behind when the
encoding cannot be used (another format won the vote, a split, a bad record that stops)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from studio.config import config_from_dict
from studio.data import loading, spooled_prepare
from studio.engine import encoded_cache, parallel_encoding
from studio.engine.control import TrainingControl
from studio.engine.data_preparation import (
    abandon_encoding_while_reading,
    encoded_for_training,
    load_run_data,
)
from studio.engine.events import PreparationProgress
from studio.errors import DataError
from tests.support.encodings import own_cache, reference_rows, rows
from tests.support.files import write_jsonl

RECORDS = [
    {"instruction": f"Question number {n}?", "input": "", "output": f"Answer {n}. " * (n % 7 + 1)}
    for n in range(600)
]


@pytest.fixture(autouse=True)
def spooled_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):
    """Every JSON Lines file spooled, read 50 lines at a time, encoded in batches of 16 by
    this process and one worker, under a cache of the test's own."""
    own_cache(monkeypatch, tmp_path / "cache", tiny_model_dir)
    monkeypatch.setenv("FTSTUDIO_ENCODE_WORKERS", "2")
    monkeypatch.setattr(loading, "SPOOL_FROM_BYTES", 0)
    monkeypatch.setattr(spooled_prepare, "CHUNK_LINES", 50)
    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 16)


def _session(path: Path, **data: Any) -> SimpleNamespace:
    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "data": {"path": str(path), "max_length": 96, **data},
        }
    )
    session = SimpleNamespace(
        config=config,
        base_dir=None,
        control=TrainingControl(),
        rank=None,
        encoding_while_reading=None,
        logged=[],
        events=[],
    )
    session.log = lambda text, level="info": session.logged.append(text)
    session.publish = session.events.append
    return session


def _encode(session: SimpleNamespace, data: Any, tokenizer: Any) -> Any:
    job = SimpleNamespace(
        config=session.config,
        session=session,
        data=data,
        tokenizer=tokenizer,
        early_preparation=None,
    )
    return encoded_for_training(job)


@pytest.mark.slow
def test_encoded_while_read_gives_the_same_examples(
    tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.engine.encoding_while_reading import EncodingWhileReading

    feed = EncodingWhileReading.__call__

    def slow_read(self: EncodingWhileReading, spool: Any, kind: str) -> None:
        feed(self, spool, kind)
        time.sleep(0.1)  # a read of 12 parts that takes over a second

    monkeypatch.setattr(EncodingWhileReading, "__call__", slow_read)
    path = write_jsonl(tmp_path / "big.jsonl", RECORDS)
    session = _session(path)
    data = load_run_data(session, tiny_tokenizer)
    read_end = time.monotonic()
    started = session.encoding_while_reading
    assert started is not None and started.encoding.sent > 0  # handed out while reading
    began = started.encoding.started
    expected = reference_rows(tiny_tokenizer, list(data.train), data.kind, 96)
    encoded = _encode(session, data, tiny_tokenizer)
    assert session.encoding_while_reading is None  # taken over
    assert rows(encoded.train) == expected and len(expected) == 600
    assert encoded.train_stats.examples == 600
    # Rate and ETA count from the start of the encoding, during the read (the records done
    # then over the time since the read ended gave rates of ~1 million records/s).
    progress = [e for e in session.events if isinstance(e, PreparationProgress)]
    assert progress and progress[0].elapsed_seconds >= read_end - began
    assert any("handed to the workers while the file was read" in line for line in session.logged)
    assert len(encoded_cache.entries()) == 1 and not encoded_cache.unfinished()
    # The next run takes the cached copy, read while encoding or not.
    again = _session(path)
    assert _encode(again, load_run_data(again, tiny_tokenizer), tiny_tokenizer).from_cache


@pytest.mark.slow
def test_a_second_read_in_another_format_starts_the_encoding_over(
    tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file starts with 100 sharegpt records: the workers start on them, then alpaca (600)
    # wins the vote and the file is read again into a new spool, in alpaca: that encoding is
    # dropped and one on the new spool starts.
    from studio.engine.encoding_while_reading import EncodingWhileReading

    dropped: list[int] = []
    drop = EncodingWhileReading._drop

    def spy(self: EncodingWhileReading) -> None:
        if self.encoding is not None:
            dropped.append(self.encoding.sent)
        drop(self)

    monkeypatch.setattr(EncodingWhileReading, "_drop", spy)
    sharegpt = [
        {"conversations": [{"from": "human", "value": f"hi {n}"}, {"from": "gpt", "value": "yo"}]}
        for n in range(100)
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", [*sharegpt, *RECORDS])
    session = _session(path)
    data = load_run_data(session, tiny_tokenizer)
    assert data.report.format == "alpaca" and len(dropped) == 1 and dropped[0] > 0
    expected = reference_rows(tiny_tokenizer, list(data.train), data.kind, 96)
    assert rows(_encode(session, data, tiny_tokenizer).train) == expected and expected
    assert any("handed to the workers while the file was read" in line for line in session.logged)
    assert len(encoded_cache.entries()) == 1 and not encoded_cache.unfinished()


def test_no_encoding_while_reading_for_a_split(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", RECORDS[:100])
    session = _session(path, eval_fraction=0.1)
    load_run_data(session, tiny_tokenizer)
    assert session.encoding_while_reading is None


@pytest.mark.slow
def test_a_bad_record_that_stops_the_run_leaves_nothing(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [*RECORDS, "{broken"])
    session = _session(path, on_bad_record="stop")
    with pytest.raises(DataError, match=r"bad\.jsonl"):
        load_run_data(session, tiny_tokenizer)
    assert session.encoding_while_reading is None
    assert not encoded_cache.unfinished()
    # A run that fails after the read, before the encoding is taken over, abandons it too.
    good = write_jsonl(tmp_path / "good.jsonl", RECORDS)
    session = _session(good)
    load_run_data(session, tiny_tokenizer)
    assert encoded_cache.unfinished()  # being written
    abandon_encoding_while_reading(session)
    assert not encoded_cache.unfinished() and not encoded_cache.entries()

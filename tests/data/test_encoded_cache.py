"""The encoded-data cache and the batched, parallel encoding behind it (issue 17)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from studio.config import config_from_dict
from studio.engine import encoded_cache, parallel_encoding
from studio.engine.control import TrainingControl
from studio.engine.data_preparation import encoded_for_training, load_run_data
from studio.engine.encoding import IGNORE_INDEX
from studio.engine.events import PreparationProgress
from studio.engine.parallel_encoding import PreparationStopped
from tests.support.encodings import own_cache as cache_of_its_own
from tests.support.encodings import reference_rows, rows

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
# (file, training type): every format ftstudio encodes itself.
ENCODED_FORMATS = [
    ("alpaca_en.jsonl", "sft"),
    ("alpaca_zh.json", "sft"),
    ("sharegpt_en.json", "sft"),
    ("messages_en.jsonl", "sft"),
    ("tools_en.jsonl", "sft"),
    ("alpaca_en.parquet", "sft"),
    ("pretrain_en.txt", "pretrain"),
]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    """A cache folder of this test's own, sharing the built tiny model."""
    return cache_of_its_own(monkeypatch, tmp_path / "cache", tiny_model_dir)


def make_job(
    path: Path | str, tokenizer: Any, training_type: str = "sft", **data: Any
) -> SimpleNamespace:
    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "training_type": training_type,
            "data": {"path": str(path), "max_length": 128, **data},
        }
    )
    session = SimpleNamespace(
        config=config,
        base_dir=SAMPLE_DATA,
        control=TrainingControl(),
        logged=[],
        events=[],
    )
    session.log = lambda text, level="info": session.logged.append(text)
    session.publish = session.events.append
    return SimpleNamespace(
        config=config,
        session=session,
        tokenizer=tokenizer,
        data=load_run_data(session),
        early_preparation=None,
    )


@pytest.mark.parametrize(("name", "training_type"), ENCODED_FORMATS)
def test_cached_and_uncached_encodings_are_identical(
    tiny_tokenizer: Any, name: str, training_type: str
) -> None:
    # Long enough for the tool definitions, short enough to truncate some records.
    cold = make_job(name, tiny_tokenizer, training_type, max_length=600)
    assert not cold.data.deferred and cold.data.data_key
    expected = reference_rows(tiny_tokenizer, cold.data.train, cold.data.kind, 600)
    first = encoded_for_training(cold)
    assert not first.from_cache
    assert cold.data.train == [] and cold.data.deferred  # released once encoded
    assert rows(first.train) == expected and expected
    if name == "tools_en.jsonl":  # tool calls are trained on, tool results are not
        trained = [t for _, labels in expected for t in labels if t != IGNORE_INDEX]
        assert "get_weather" in tiny_tokenizer.decode(trained)

    warm = make_job(name, tiny_tokenizer, training_type, max_length=600)
    assert warm.data.deferred and warm.data.train == []  # the file is not read again
    assert warm.data.report.to_dict() == cold.data.report.to_dict()
    second = encoded_for_training(warm)
    assert second.from_cache
    assert rows(second.train) == expected
    assert second.train_stats == first.train_stats


def test_eval_split_is_cached_with_the_training_split(tiny_tokenizer: Any) -> None:
    cold = make_job("alpaca_en.jsonl", tiny_tokenizer, eval_fraction=0.25)
    first = encoded_for_training(cold)
    assert first.eval is not None and len(first.eval) == 10
    second = encoded_for_training(make_job("alpaca_en.jsonl", tiny_tokenizer, eval_fraction=0.25))
    assert second.from_cache and rows(second.eval) == rows(first.eval)


def _entries() -> int:
    return len(encoded_cache.entries())


def test_a_changed_file_misses_the_cache(tiny_tokenizer: Any, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    lines = (SAMPLE_DATA / "alpaca_en.jsonl").read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    encoded_for_training(make_job(data, tiny_tokenizer))
    # Same size, same modification time, one character different: still a miss.
    stat = data.stat()
    changed = lines[0].replace("a", "b", 1)
    assert changed != lines[0] and len(changed) == len(lines[0])
    data.write_text("\n".join([changed, *lines[1:]]) + "\n", encoding="utf-8")
    import os

    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    job = make_job(data, tiny_tokenizer)
    assert not job.data.deferred
    assert not encoded_for_training(job).from_cache
    assert _entries() == 2


def test_a_changed_tokenizer_template_or_max_length_misses_the_cache(tiny_tokenizer: Any) -> None:
    assert not encoded_for_training(make_job("alpaca_en.jsonl", tiny_tokenizer)).from_cache
    other_template = copy.deepcopy(tiny_tokenizer)
    other_template.chat_template = tiny_tokenizer.chat_template.replace("\\n", "\\n\\n", 1)
    assert other_template.chat_template != tiny_tokenizer.chat_template
    other_vocabulary = copy.deepcopy(tiny_tokenizer)
    other_vocabulary.add_tokens(["<new-token>"])
    for tokenizer in (other_template, other_vocabulary):
        job = make_job("alpaca_en.jsonl", tokenizer)
        assert job.data.deferred  # same data: only the tokenizer differs
        encoded = encoded_for_training(job)
        assert not encoded.from_cache and len(encoded.train) == 40  # read again, encoded again
        assert any("another tokenizer" in line for line in job.session.logged)
    assert not encoded_for_training(
        make_job("alpaca_en.jsonl", tiny_tokenizer, max_length=64)
    ).from_cache
    assert _entries() == 4
    assert encoded_for_training(make_job("alpaca_en.jsonl", tiny_tokenizer)).from_cache


def test_a_tokenizer_keeps_its_key_whatever_call_it_made_last(tiny_tokenizer: Any) -> None:
    """transformers leaves truncation and padding set on the backend after a call: they do not
    change the key (they made a run's own encoding miss the cache it had just begun)."""
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    plain = encoded_cache.tokenizer_key(tokenizer)
    tokenizer(["a b c", "d"], truncation=True, max_length=2, padding="max_length")
    assert tokenizer.backend_tokenizer.truncation is not None
    assert encoded_cache.tokenizer_key(tokenizer) == plain
    tokenizer.chat_template = "{{ messages }}"
    assert encoded_cache.tokenizer_key(tokenizer) != plain


def test_preference_data_is_left_to_trl_and_not_cached(tiny_tokenizer: Any) -> None:
    for name, training_type in (("preference_en.jsonl", "dpo"), ("kto_en.jsonl", "kto")):
        job = make_job(name, tiny_tokenizer, training_type)
        assert job.data.data_key is None and not job.data.deferred and job.data.train


def test_a_stopped_preparation_leaves_no_entry(
    tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch, own_cache: Path
) -> None:
    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 8)
    job = make_job("alpaca_en.jsonl", tiny_tokenizer)
    seen: list[PreparationProgress] = []

    def publish(event: Any) -> None:
        seen.append(event)
        job.session.control.stop()  # the user presses x (or Ctrl-C) during the preparation

    job.session.publish = publish
    monkeypatch.setattr("studio.engine.data_preparation.PROGRESS_INTERVAL", 0.0)
    with pytest.raises(PreparationStopped):
        encoded_for_training(job)
    assert len(seen) == 1 and seen[0].done == 8 and seen[0].total == 40
    assert _entries() == 0 and not encoded_cache.unfinished()
    assert not list(own_cache.iterdir())
    again = make_job("alpaca_en.jsonl", tiny_tokenizer)
    assert not again.data.deferred
    assert not encoded_for_training(again).from_cache and _entries() == 1


def test_a_failure_inside_the_encoding_leaves_no_entry(
    tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.engine import batch_encoding

    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 8)
    real = batch_encoding.encode_batch
    calls = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a second Ctrl-C, a crash: the same for the cache
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_encoding, "encode_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        encoded_for_training(make_job("alpaca_en.jsonl", tiny_tokenizer))
    assert _entries() == 0 and not encoded_cache.unfinished()


def test_a_half_written_staging_folder_is_never_used(tiny_tokenizer: Any, own_cache: Path) -> None:
    job = make_job("alpaca_en.jsonl", tiny_tokenizer)
    key = encoded_cache.entry_key(
        job.data.data_key, encoded_cache.tokenizer_key(tiny_tokenizer), True
    )
    staging = encoded_cache.start_staging(key)  # a run killed with -9 mid-way
    (staging / encoded_cache.TRAIN_FILE).write_bytes(b"not arrow")
    (own_cache / key).mkdir()  # and a folder without entry.json
    assert encoded_cache.find_entry(key) is None
    assert not make_job("alpaca_en.jsonl", tiny_tokenizer).data.deferred
    assert "1 unfinished preparation" in encoded_cache.cache_listing()


def test_progress_events_reach_the_end_with_an_eta(tiny_tokenizer: Any, monkeypatch) -> None:
    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 16)
    monkeypatch.setattr("studio.engine.data_preparation.PROGRESS_INTERVAL", 0.0)
    job = make_job("alpaca_en.jsonl", tiny_tokenizer)
    encoded_for_training(job)
    progress = [e for e in job.session.events if isinstance(e, PreparationProgress)]
    assert [e.done for e in progress] == [16, 32, 40]
    assert progress[0].eta_seconds is not None and progress[0].eta_seconds > 0
    assert "ETA" in PreparationProgress("train set", 5, 10, 2.0, 2.0).text
    text = progress[-1].text
    assert text.startswith("encoding train set: 40 / 40 records (100%)") and "ETA" not in text


def test_worker_count_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delenv("FTSTUDIO_ENCODE_WORKERS", raising=False)
    assert parallel_encoding.choose_workers(1000, cpus=8)[0] == 1
    assert parallel_encoding.choose_workers(100_000, cpus=1)[0] == 1
    assert parallel_encoding.choose_workers(100_000, cpus=2)[0] == 2
    assert parallel_encoding.choose_workers(10**7, cpus=64)[0] == parallel_encoding.MAX_WORKERS
    monkeypatch.setenv("FTSTUDIO_ENCODE_WORKERS", "3")
    assert parallel_encoding.choose_workers(1000, cpus=2)[0] == 3
    monkeypatch.delenv("FTSTUDIO_ENCODE_WORKERS")
    # A script read from stdin cannot be re-run by a spawned worker: one process.
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "/nonexistent/<stdin>", raising=False)
    workers, reason = parallel_encoding.choose_workers(100_000, cpus=2)
    assert workers == 1 and "stdin" in reason


@pytest.mark.slow
def test_worker_processes_write_the_same_examples(
    tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import Dataset

    # Batches of two records: many batches, shared between the main process and the worker.
    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 2)

    from studio.data.loading import prepare_file
    from studio.data.training_fit import fit_training_type

    records, report = prepare_file(str(SAMPLE_DATA / "sharegpt_en.json"))
    kind, records = fit_training_type(records, report, "sft")
    plain = [item.record for item in records]
    one, two = tmp_path / "one.arrow", tmp_path / "two.arrow"
    parallel_encoding.encode_to_arrow(tiny_tokenizer, plain, kind, 128, True, one)
    stats = parallel_encoding.encode_to_arrow(
        tiny_tokenizer, plain, kind, 128, True, two, workers=2
    )
    assert rows(Dataset.from_file(str(two))) == rows(Dataset.from_file(str(one)))
    assert stats.examples == len(Dataset.from_file(str(one)))
    # Packed records go to the worker as JSON and come back as the same examples.
    packed, three = parallel_encoding.PackedRecords.pack(plain), tmp_path / "three.arrow"
    assert packed is not None
    parallel_encoding.encode_to_arrow(tiny_tokenizer, packed, kind, 128, True, three, workers=2)
    assert rows(Dataset.from_file(str(three))) == rows(Dataset.from_file(str(one)))
    # Spooled records (a large file's, on disk) go to the worker as their JSON lines too.
    from studio.data.spool import RecordSpool

    spool, four = RecordSpool("sharegpt_en.json"), tmp_path / "four.arrow"
    spool.extend(records)
    parallel_encoding.encode_to_arrow(
        tiny_tokenizer, spool.records, kind, 128, True, four, workers=2
    )
    assert rows(Dataset.from_file(str(four))) == rows(Dataset.from_file(str(one)))


@pytest.mark.parametrize(("name", "training_type"), ENCODED_FORMATS)
def test_packed_records_encode_the_same(
    tiny_tokenizer: Any, name: str, training_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.engine import data_preparation

    packed: list[int] = []
    pack = parallel_encoding.PackedRecords.pack

    def spy(records: list[dict[str, Any]]) -> Any:
        packed.append(len(records))
        return pack(records)

    monkeypatch.setattr(data_preparation, "PACK_THRESHOLD", 0)
    monkeypatch.setattr(parallel_encoding.PackedRecords, "pack", staticmethod(spy))
    job = make_job(name, tiny_tokenizer, training_type, max_length=600)
    expected = reference_rows(tiny_tokenizer, job.data.train, job.data.kind, 600)
    records = len(job.data.train)
    encoded = encoded_for_training(job)
    assert packed[0] == records and job.data.train == []
    assert rows(encoded.train) == expected and expected


@pytest.mark.parametrize("eval_fraction", [0.0, 0.25])
@pytest.mark.parametrize("name", ["alpaca_en.jsonl", "messages_en.jsonl", "tools_en.jsonl"])
def test_spooled_records_encode_the_same(
    tiny_tokenizer: Any, name: str, eval_fraction: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large JSON Lines file's records wait on disk (a spool) and are encoded from there:
    the same examples as from memory, in both splits."""
    from studio.data import loading
    from studio.data.spool import SpooledRecords

    monkeypatch.setattr(loading, "SPOOL_FROM_BYTES", 0)
    job = make_job(name, tiny_tokenizer, max_length=600, eval_fraction=eval_fraction)
    assert isinstance(job.data.train, SpooledRecords)
    expected = reference_rows(tiny_tokenizer, list(job.data.train), job.data.kind, 600)
    expected_eval = reference_rows(tiny_tokenizer, list(job.data.eval), job.data.kind, 600)
    encoded = encoded_for_training(job)
    assert rows(encoded.train) == expected and expected
    assert (rows(encoded.eval) if encoded.eval is not None else []) == expected_eval
    assert bool(expected_eval) == (eval_fraction > 0)
    warm = make_job(name, tiny_tokenizer, max_length=600, eval_fraction=eval_fraction)
    assert encoded_for_training(warm).from_cache


def test_records_that_are_not_json_data_are_not_packed() -> None:
    assert parallel_encoding.PackedRecords.pack([{"text": b"bytes"}]) is None
    records = [{"messages": [{"role": "user", "content": 'é \u2028 "q"'}], "n": 1.5}]
    packed = parallel_encoding.PackedRecords.pack(records)
    assert packed is not None and packed[0:1] == records


def test_data_cache_command_lists_and_clears(tiny_tokenizer: Any, capsys, own_cache) -> None:
    from studio.cli import main

    encoded_for_training(make_job("alpaca_en.jsonl", tiny_tokenizer))
    assert main(["data", "cache"]) == 0
    listed = capsys.readouterr().out
    assert "alpaca_en.jsonl" in listed and "total: 1 entries" in listed
    size = encoded_cache.entries()[0].size_bytes
    assert size > 0 and f"{size / 1024:,.1f} KiB" in listed
    assert main(["data", "cache", "--clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert _entries() == 0
    assert main(["data", "cache"]) == 0
    assert "total: 0 entries" in capsys.readouterr().out


def test_clear_leaves_a_preparation_that_is_running_now(capsys, own_cache: Path) -> None:
    """`--clear` beside a run that is preparing must not pull its staging folder away."""
    import json as json_module

    from studio.cli import main
    from tests.support.processes import dead_pid

    running = encoded_cache.start_staging("a" * 64)  # this process: alive
    crashed = encoded_cache.start_staging("b" * 64)
    owner = crashed / encoded_cache.OWNER_FILE
    owner.write_text(
        json_module.dumps({**json_module.loads(owner.read_text()), "pid": dead_pid()}),
        encoding="utf-8",
    )
    assert main(["data", "cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert "removed 1" in out and "left 1 preparation" in out
    assert running.is_dir() and not crashed.exists()


def test_report_round_trips(tiny_tokenizer: Any) -> None:
    from studio.data.report import DataReport

    job = make_job(SAMPLE_DATA / "bad" / "alpaca_with_errors.jsonl", tiny_tokenizer)
    data = job.data.report.to_dict()
    assert DataReport.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_console_shows_the_preparation_progress() -> None:
    import io

    from studio.commands.train_console import ConsoleProgress

    stream = io.StringIO()
    console = ConsoleProgress(stream=stream)
    console(PreparationProgress("train set", 500, 1000, 1.0, 1.0))
    assert "encoding train set: 500 / 1,000 records (50%), 500 records/s, ETA 1 s" in (
        stream.getvalue()
    )


@pytest.mark.slow
def test_stop_during_preparation_ends_the_run_stopped_without_a_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.engine import EventBus, RunState
    from studio.engine.session import TrainingSession

    monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 8)
    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "method": {"name": "lora", "rank": 4, "alpha": 8},
            "data": {"path": "alpaca_en.jsonl", "max_length": 64},
            "training": {"max_steps": 2, "batch_size": 2},
            "output": {"runs_dir": str(tmp_path / "runs")},
        }
    )
    bus, control = EventBus(), TrainingControl()
    # The user stops (x in the TUI, Ctrl-C headless) at the first progress report.
    bus.subscribe(lambda event: isinstance(event, PreparationProgress) and control.stop())
    result = TrainingSession(
        config, bus, control, base_dir=SAMPLE_DATA, telemetry_interval=None
    ).run()
    assert result.state is RunState.STOPPED and result.steps == 0
    assert _entries() == 0 and not encoded_cache.unfinished()
    status = json.loads((Path(result.run_dir) / "status.json").read_text())
    assert status["state"] == "stopped" and status["error"] is None


def test_train_screen_state_line_shows_the_preparation_progress() -> None:
    from studio.engine import RunState
    from studio.engine.events import StateChanged
    from studio.ui.runs.monitor import RunMonitor

    monitor = RunMonitor()
    monitor.record(StateChanged(RunState.PREPARING, "run directory /tmp/runs/x"))
    monitor.record(PreparationProgress("train set", 250, 1000, 5.0, 15.0))
    view = monitor.view()
    assert view.state is RunState.PREPARING
    assert (
        view.state_detail == "encoding train set: 250 / 1,000 records (25%), 50 records/s, ETA 15 s"
    )

"""The run's data is encoded while its model loads (issue 17): the first step comes sooner,
and a run that fails or is stopped before training leaves no cache entry and no thread."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from studio.config import config_from_dict
from studio.engine import EventBus, RunState, batch_encoding, encoded_cache, parallel_encoding
from studio.engine.control import TrainingControl
from studio.engine.events import LogLine, PreparationProgress
from studio.engine.session import TrainingSession
from tests.support.encodings import own_cache

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture(autouse=True)
def cache_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):
    own_cache(monkeypatch, tmp_path / "cache", tiny_model_dir)


class Run:
    """A tiny SFT run whose model load waits for (or reacts to) the data's encoding."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bus, self.control = EventBus(), TrainingControl()
        self.progress = threading.Event()
        self.logged: list[str] = []
        self.bus.subscribe(self._record)
        self.config = config_from_dict(
            {
                "model": {"source": "tiny-demo"},
                "method": {"name": "lora", "rank": 4, "alpha": 8},
                "data": {"path": "alpaca_en.jsonl", "max_length": 64},
                "training": {"max_steps": 1, "batch_size": 2},
                "output": {"runs_dir": str(tmp_path / "runs")},
            }
        )
        from studio.models import loading

        self.load_model = loading.load_base_model
        self.monkeypatch = monkeypatch

    def _record(self, event: Any) -> None:
        if isinstance(event, PreparationProgress):
            self.progress.set()
        elif isinstance(event, LogLine):
            self.logged.append(event.text)

    def slow_encoding(self) -> None:
        """Batches of 8 records that take 50 ms each: the encoding is still going on when
        the model's load is told of its first progress."""
        self.monkeypatch.setattr(parallel_encoding, "BATCH_RECORDS", 8)
        encode = batch_encoding.encode_batch

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return encode(*args, **kwargs)

        self.monkeypatch.setattr(batch_encoding, "encode_batch", slow)

    def when_loading_the_model(self, then: Any) -> None:
        from studio.models import loading

        def load(*args: Any, **kwargs: Any) -> Any:
            # Without an early start nothing is encoded before the model is loaded.
            assert self.progress.wait(60), "the data was not being encoded while the model loaded"
            return then(*args, **kwargs)

        self.monkeypatch.setattr(loading, "load_base_model", load)

    def run(self) -> Any:
        return TrainingSession(
            self.config, self.bus, self.control, base_dir=SAMPLE_DATA, telemetry_interval=None
        ).run()


def _preparing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ftstudio-data" and t.is_alive()]


def test_the_data_is_encoded_while_the_model_loads(tmp_path: Path, monkeypatch) -> None:
    run = Run(tmp_path, monkeypatch)
    run.when_loading_the_model(run.load_model)
    result = run.run()
    assert result.state is RunState.FINISHED and result.steps == 1
    assert len(encoded_cache.entries()) == 1
    assert any(line.startswith("encoded data cached in") for line in run.logged)
    assert not _preparing_threads()


@pytest.mark.slow
def test_a_model_that_fails_to_load_cancels_the_encoding(tmp_path: Path, monkeypatch) -> None:
    run = Run(tmp_path, monkeypatch)
    run.slow_encoding()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("model.safetensors: unexpected end of file")

    run.when_loading_the_model(broken)
    result = run.run()
    assert result.state is RunState.FAILED
    status = json.loads((Path(result.run_dir) / "status.json").read_text())
    assert "unexpected end of file" in status["error"]["message"]
    assert not encoded_cache.entries() and not encoded_cache.unfinished()
    assert not _preparing_threads()


@pytest.mark.slow
def test_a_stop_while_the_model_loads_ends_the_run_stopped(tmp_path: Path, monkeypatch) -> None:
    run = Run(tmp_path, monkeypatch)
    run.slow_encoding()

    def stop_then_load(*args: Any, **kwargs: Any) -> Any:
        run.control.stop()
        return run.load_model(*args, **kwargs)

    run.when_loading_the_model(stop_then_load)
    result = run.run()
    assert result.state is RunState.STOPPED and result.steps == 0
    assert not encoded_cache.entries() and not encoded_cache.unfinished()
    assert not _preparing_threads()

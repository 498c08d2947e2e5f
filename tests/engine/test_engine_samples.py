"""Watch the model learn: the sample prompts are answered during training, kept in the run
folder, published as events and replayed for an attached run."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import config_from_dict
from studio.engine import EventBus, RunState
from studio.engine.events import SampleGenerations
from studio.engine.follower import replay_run
from studio.engine.samples import read_samples, sample_every
from studio.engine.session import TrainingSession
from tests.conftest import REPO


@pytest.mark.slow
def test_sample_answers_are_published_kept_and_replayed(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "model": {"source": "tiny-demo"},
            "method": {"name": "lora", "rank": 4, "alpha": 8},
            "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 64},
            "training": {"max_steps": 3, "batch_size": 2, "sample_steps": 2},
            "output": {"runs_dir": str(tmp_path / "runs")},
        }
    )
    bus = EventBus()
    published: list[SampleGenerations] = []
    bus.subscribe(lambda e: published.append(e) if isinstance(e, SampleGenerations) else None)
    result = TrainingSession(config, bus, base_dir=REPO, telemetry_interval=None).run()
    assert result.state is RunState.FINISHED
    # Every second step, and the last one.
    assert [event.step for event in published] == [2, 3]
    first = published[0]
    assert len(first.answers) == 2  # two prompts drawn from the data
    # The prompt is the question as the model sees it, without the answer.
    assert first.answers[0].prompt and first.answers[0].prompt != first.answers[1].prompt
    kept = read_samples(result.run_dir)
    assert [(e.step, e.answers) for e in kept] == [(e.step, e.answers) for e in published]
    replayed = [e for e in replay_run(result.run_dir) if isinstance(e, SampleGenerations)]
    assert [e.step for e in replayed] == [2, 3]


@pytest.mark.slow
def test_configured_prompts_and_off(tmp_path: Path) -> None:
    base = {
        "model": {"source": "tiny-demo"},
        "method": {"name": "lora", "rank": 4, "alpha": 8},
        "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 64},
        "output": {"runs_dir": str(tmp_path / "runs")},
    }
    config = config_from_dict(
        {**base, "training": {"max_steps": 1, "batch_size": 2, "sample_prompts": ["Hi?"]}}
    )
    result = TrainingSession(config, base_dir=REPO, telemetry_interval=None).run()
    samples = read_samples(result.run_dir)
    assert [e.step for e in samples] == [1]
    assert len(samples[0].answers) == 1 and "Hi?" in samples[0].answers[0].prompt
    off = config_from_dict(
        {**base, "training": {"max_steps": 1, "batch_size": 2, "sample_steps": 0}}
    )
    result = TrainingSession(off, base_dir=REPO, telemetry_interval=None).run()
    assert read_samples(result.run_dir) == []
    assert not (Path(result.run_dir) / "samples.jsonl").exists()


def test_sample_every_defaults_to_four_times_a_run() -> None:
    assert sample_every(None, 200) == 50
    assert sample_every(None, 3) == 1
    assert sample_every(7, 200) == 7


def test_runs_shows_each_prompt_answered_at_every_sampled_step(tmp_path: Path) -> None:
    from studio.engine.events import SampleAnswer
    from studio.engine.samples import SAMPLES_FILE, sample_record
    from studio.ui.screens.runs_detail import samples_by_prompt

    lines = [
        sample_record(SampleGenerations(step=step, answers=(SampleAnswer("Hi?", reply),)))
        for step, reply in ((5, "hi hi"), (10, "Hello!"))
    ]
    import json

    (tmp_path / SAMPLES_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = samples_by_prompt(tmp_path)
    from studio.ui.chrome.glyphs import glyph

    assert text.splitlines() == [f"{glyph('prompt')} Hi?", "  step  5: hi hi", "  step 10: Hello!"]
    assert "no samples" in samples_by_prompt(tmp_path / "missing")

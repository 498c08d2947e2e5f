"""What `ftstudio chat` and the Chat screen can open: runs, checkpoints, adapters, base models.

Run folders here are written by hand (config, status, checkpoint files), so these tests need no
model and no training; loading real ones is in test_chat_model.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.chat.targets import (
    base_target,
    list_checkpoints,
    resolve_target,
    run_is_active,
    run_target,
)
from studio.config import RunConfig, dump_config
from studio.errors import ModelError
from tests.support.cli import studio_process


def make_run(
    root: Path,
    *,
    adapter: bool = False,
    complete: tuple[int, ...] = (),
    partial: tuple[int, ...] = (),
    state: str = "running",
    pid: int | None = None,
) -> Path:
    run = root / "tiny-demo-lora-sft-test"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(RunConfig()), encoding="utf-8")
    status = {"state": state, "pid": os.getpid() if pid is None else pid}
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
    if adapter:
        write_adapter(run / "adapter")
    for step in complete:
        folder = write_adapter(run / "checkpoints" / f"checkpoint-{step}")
        (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
        (folder / "ftstudio_complete.json").write_text("{}", encoding="utf-8")
    for step in partial:
        write_adapter(run / "checkpoints" / f"checkpoint-{step}")  # no completion marker yet
    return run


def write_adapter(folder: Path, base: str = "tiny-demo") -> Path:
    folder.mkdir(parents=True)
    config = {"base_model_name_or_path": base, "peft_type": "LORA"}
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_a_finished_run_opens_its_adapter(tmp_path: Path) -> None:
    run = make_run(tmp_path, adapter=True, state="finished")
    target = resolve_target(run)
    assert target.kind == "run" and target.adapter_dir == run / "adapter"
    assert target.model.source == "tiny-demo" and target.method.name == "lora"
    assert not target.run_is_training
    assert "final adapter" in target.label
    # The adapter folder itself resolves to the same run target.
    assert resolve_target(run / "adapter") == target


def test_a_run_without_adapter_suggests_its_newest_complete_checkpoint(tmp_path: Path) -> None:
    run = make_run(tmp_path, complete=(50, 100), partial=(150,))
    with pytest.raises(ModelError) as caught:
        resolve_target(run)
    text = str(caught.value)
    assert "has no adapter yet" in text
    assert "still training" in text
    assert str(run / "checkpoints" / "checkpoint-100") in text


def test_a_run_without_any_checkpoint_suggests_the_base_model(tmp_path: Path) -> None:
    run = make_run(tmp_path, state="failed")
    with pytest.raises(ModelError) as caught:
        run_target(run)
    assert "--base" in str(caught.value) and "save_steps" in str(caught.value)
    target = resolve_target(run, base=True)
    assert target.kind == "base" and target.adapter_dir is None and target.run_dir == run


def test_checkpoints_being_written_are_listed_but_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, complete=(50, 100), partial=(150,))
    (run / "checkpoints" / ".deleting-checkpoint-0-123").mkdir()  # pruning debris: ignored
    listed = [(info.step, info.complete) for info in list_checkpoints(run)]
    assert listed == [(50, True), (100, True), (150, False)]

    latest = run_target(run, checkpoint="latest")
    assert (latest.kind, latest.step) == ("checkpoint", 100)
    assert latest.adapter_dir == run / "checkpoints" / "checkpoint-100"
    assert "checkpoint-100" in latest.label

    with pytest.raises(ModelError, match="still being written") as caught:
        run_target(run, checkpoint=150)
    assert "50, 100" in str(caught.value)
    with pytest.raises(ModelError, match="no checkpoint-70"):
        run_target(run, checkpoint=70)
    with pytest.raises(ModelError, match="not a checkpoint"):
        run_target(run, checkpoint="newest")


def test_only_the_engine_marker_completes_a_checkpoint(tmp_path: Path) -> None:
    run = make_run(tmp_path, partial=(20,))
    checkpoint = run / "checkpoints" / "checkpoint-20"
    # The Trainer's own state file is no proof: a save can crash after writing it.
    (checkpoint / "trainer_state.json").write_text("{}")
    assert [info.complete for info in list_checkpoints(run)] == [False]
    (checkpoint / "ftstudio_complete.json").write_text("{}")
    assert [info.complete for info in list_checkpoints(run)] == [True]


def test_a_checkpoint_folder_resolves_to_its_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, complete=(50,))
    target = resolve_target(run / "checkpoints" / "checkpoint-50")
    assert (target.kind, target.step, target.run_dir) == ("checkpoint", 50, run)
    assert target.run_is_training  # status.json says running, with this live process's pid


def test_bare_adapter_folder_names_its_base_model(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "exported", base="tiny-demo")
    target = resolve_target(folder)
    assert (target.kind, target.model.source, target.run_dir) == ("adapter", "tiny-demo", None)
    assert resolve_target(folder, model_source="/models/other").model.source == "/models/other"
    assert resolve_target(folder, base=True).kind == "base"


def test_adapter_without_base_model_asks_for_one(tmp_path: Path) -> None:
    folder = tmp_path / "adapter-only"
    folder.mkdir()
    (folder / "ftstudio_method.json").write_text('{"method": {"name": "full"}}')
    with pytest.raises(ModelError, match="cannot tell which base model") as caught:
        resolve_target(folder)
    assert "--model" in str(caught.value)
    assert resolve_target(folder, model_source="tiny-demo").model.source == "tiny-demo"


def test_model_folders_and_the_tiny_model_are_base_targets(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_target(tmp_path).kind == "base"
    assert resolve_target("tiny-demo") == base_target("tiny-demo")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such run, adapter or model folder"),
        (lambda root: _touch(root / "notes.txt"), "is a file, not a folder"),
        (lambda root: _mkdir(root / "empty"), "is not a run, an adapter or a model folder"),
    ],
)
def test_wrong_paths_are_clear_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_target(make(tmp_path))


def test_run_activity_follows_status_and_pid(tmp_path: Path) -> None:
    live = make_run(tmp_path / "a")
    assert run_is_active(live)
    dead = make_run(tmp_path / "b", pid=_dead_pid())
    assert not run_is_active(dead)  # "running" in status.json, but its process is gone
    finished = make_run(tmp_path / "c", state="finished")
    assert not run_is_active(finished)
    assert not run_is_active(tmp_path / "nowhere")


@pytest.mark.slow
def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    run = make_run(tmp_path, complete=(50,))
    cases = [
        ((str(tmp_path / "nope"), "--prompt", "hi"), "no such run, adapter or model folder"),
        ((str(run), "--prompt", "hi"), "checkpoint-50"),
        ((str(run / "config.yaml"), "--prompt", "hi"), "is a file, not a folder"),
        ((str(run), "--checkpoint", "9", "--prompt", "hi"), "no checkpoint-9"),
        ((str(run), "--temperature", "7", "--prompt", "hi"), "temperature"),
        (("--prompt", "hi"), "nothing to chat with"),
        (("--model", "tiny-demo", "--compare", "--prompt", "hi"), "--compare needs an adapter"),
    ]
    for args, message in cases:
        result = studio_process("chat", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid

"""`--set key=value` behaves the same on every path that changes a run config.

One table of overrides drives each path as a user reaches it:
- `ftstudio train FILE --set ...`
- `ftstudio train --resume RUN --set ...` (a stopped run folder)
- `ftstudio --config FILE --set ...` (the TUI started on a config)
- the TUI's own changes (typed values under dotted keys), as its resume hands them on.
Each path ends in the same config, or the same `StudioError` with advice and no traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from studio.config import RunConfig, config_to_dict, load_config
from studio.engine import RunState
from studio.errors import ConfigError
from tests.conftest import SAMPLE_DATA

QUICKSTART = SAMPLE_DATA / "configs" / "quickstart.yaml"


@dataclass(frozen=True)
class Case:
    override: str
    check: Any = None  # (config) -> bool for a valid override
    error: tuple[str, ...] = ()  # fragments of the error (message and advice) otherwise
    typed: bool = True  # the TUI has the same change as a typed value
    label: str = field(default="", compare=False)


CASES = [
    Case("training.learning_rate=1e-4", check=lambda c: c.training.learning_rate == 1e-4),
    Case(
        "method.target_modules=[q_proj, v_proj]",
        check=lambda c: c.method.target_modules == ["q_proj", "v_proj"] and c.method.rank == 4,
    ),
    Case("data.system_prompt=", check=lambda c: c.data.system_prompt == ""),
    Case(
        "training.learning_rate=[",
        error=("training.learning_rate=[", "not valid YAML", "hint: ", "quote"),
        typed=False,
    ),
    Case("training.learning_rate", error=("not of the form key=value",), typed=False),
    Case(
        "trainin.learning_rate=1e-4",
        error=("unknown section 'trainin'", "did you mean training?"),
    ),
    Case(
        "training.learnin_rate=1e-4",
        error=("training has no field 'learnin_rate'", "did you mean learning_rate?"),
    ),
    Case("method.rnak=8", error=("method.rnak: unknown field", "lora has: rank", "hint: ")),
    Case("hyper.rate=1", error=("unknown section 'hyper'", "sections are: model, method")),
    Case("training_type.name=sft", error=("training_type is a value, not a section",)),
    Case(
        "method.name=qlora",
        check=lambda c: c.method.name == "qlora" and c.method.rank == 16 and c.method.alpha is None,
    ),
    Case("method=qlora", check=lambda c: c.method.name == "qlora" and c.method.rank == 16),
    Case("method=lora", check=lambda c: c.method.name == "lora" and c.method.rank == 4),
    Case(
        "training.batch_size=many",
        error=("--set training.batch_size = 'many'", "valid integer", "ftstudio config --explain"),
    ),
    Case("training.learning_rate=0.5", error=("training.learning_rate = 0.5", "1e-06..0.01")),
    Case("method.name=lorra", error=("unknown method", "qlora")),
]


@pytest.fixture
def stopped_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(config file, run folder): a stopped run written by the engine's own run folder code
    (nothing trained: only its config and status matter here) and a copy of its config."""
    from studio.engine.run_dir import RunDirectory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = load_config(
        QUICKSTART,
        [f"output.runs_dir={tmp_path / 'runs'}", "output.run_name=base", "method.rank=4"],
    )
    run = RunDirectory.create(config)
    run.write_status(state=RunState.STOPPED.value, step=2, max_steps=4)
    file = tmp_path / "run.yaml"
    file.write_bytes(run.config_path.read_bytes())
    return file, run.path


class FakeSession:
    """Stands in for the training session: records its config, trains nothing."""

    run_dir = None

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def run(self) -> Any:
        return type("Result", (), {"state": RunState.FINISHED})()

    def log(self, text: str, level: str = "info") -> None:
        pass


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[RunConfig]:
    """The configs the launcher was asked to train, instead of training them."""
    from studio.engine import launcher

    made: list[RunConfig] = []

    def session_for_config(config: RunConfig, bus: Any = None, control: Any = None, **_: Any):
        made.append(config)
        return FakeSession(config)

    monkeypatch.setattr(launcher, "session_for_config", session_for_config)
    return made


def outcome_of_cli(capsys: pytest.CaptureFixture[str], made: list[RunConfig], *argv: str):
    """`ftstudio ARGV` in this process: ("config", data) or ("error", text)."""
    from studio.cli import main

    capsys.readouterr()
    made.clear()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    if code == 0:
        assert len(made) == 1, (out, err)
        return "config", config_to_dict(made[0])
    assert code == 2 and not made, (code, out, err)
    return "error", err.strip().removeprefix("error: ")


def outcome_of_tui_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, file: Path, text: str
):
    """`ftstudio --config FILE --set TEXT`: the config the studio opens with."""
    from studio.ui.chrome import terminal

    opened: list[RunConfig] = []

    def run_app_in_terminal(app: Any) -> int:
        opened.append(app.studio.config)
        return 0

    monkeypatch.setattr(terminal, "run_app_in_terminal", run_app_in_terminal)
    return outcome_of_cli(capsys, opened, "--config", str(file), "--set", text)


def outcome_of_tui_changes(run: Path, case: Case, made: list[RunConfig]):
    """The TUI resuming `run` with the change as a typed value (`RunController.resume_run`)."""
    import yaml

    from studio.engine.events import EventBus
    from studio.ui.runs.launch import resume_factory

    key, _, value_text = case.override.partition("=")
    value = yaml.safe_load(value_text) if value_text.strip() else ""
    made.clear()
    try:
        resume_factory(run, {key: value})(EventBus(), None)
    except ConfigError as error:
        assert not made
        return "error", str(error)
    assert len(made) == 1
    return "config", config_to_dict(made[0])


@pytest.mark.parametrize("case", CASES, ids=[case.override for case in CASES])
def test_every_path_applies_an_override_alike(
    case: Case,
    stopped_run: tuple[Path, Path],
    sessions: list[RunConfig],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file, run = stopped_run
    outcomes = {
        "train": outcome_of_cli(capsys, sessions, "train", str(file), "--set", case.override),
        "resume": outcome_of_cli(
            capsys, sessions, "train", "--resume", str(run), "--set", case.override
        ),
        "studio --config": outcome_of_tui_config(capsys, monkeypatch, file, case.override),
    }
    if case.typed:
        outcomes["tui changes"] = outcome_of_tui_changes(run, case, sessions)
    kind, result = outcomes["train"]
    assert all(outcome == (kind, result) for outcome in outcomes.values()), outcomes
    if case.check is not None:
        assert kind == "config", result
        assert case.check(RunConfig.model_validate(result))
    else:
        assert kind == "error", result
        for fragment in case.error:
            assert fragment in result, result


def test_a_method_name_applies_first_whatever_its_place(stopped_run) -> None:
    file, _ = stopped_run
    config = load_config(file, ["method.rank=8", "method=qlora", "method.quant_type=fp4"])
    assert (config.method.name, config.method.rank, config.method.quant_type) == ("qlora", 8, "fp4")


def test_a_bad_value_in_the_file_is_blamed_on_its_line_and_one_from_set_on_set(
    tmp_path: Path,
) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("training:\n  epochs: 1\n  learning_rate: 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file, ["training.epochs=-1"])
    lines = caught.value.message.splitlines()
    assert any(line.startswith(f"  {file}, line 3: training.learning_rate = 0.5") for line in lines)
    assert any(line.startswith("  --set training.epochs = -1") for line in lines), lines

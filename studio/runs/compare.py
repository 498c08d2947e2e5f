"""Compare runs: their loss curves side by side and the differences between their configs.

The Runs screen plots `Comparison.curves` itself; the headless CLI draws them as text with
`render_loss_overlay` (plotext).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.config import flatten
from studio.runs.catalog import RunCurves, read_config_mapping, read_curves

# Keys that differ between any two runs and say nothing about training.
IGNORED_KEYS = ("output.run_name", "output.runs_dir")
MARKERS = ("•", "+", "x", "*", "o", "#")


@dataclass(frozen=True)
class ConfigDifference:
    key: str  # dotted, e.g. training.learning_rate
    values: tuple[Any, ...]  # one per run, in the order given; MISSING where absent


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


MISSING: Any = _Missing()


def config_differences(runs: list[Path]) -> list[ConfigDifference]:
    """Every config key whose value is not the same in all runs, in config order."""
    flats = [flatten(read_config_mapping(run)) for run in runs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(key for key in flat if key not in keys)
    differences = []
    for key in keys:
        if key in IGNORED_KEYS:
            continue
        values = tuple(flat.get(key, MISSING) for flat in flats)
        if any(value != values[0] for value in values[1:]):
            differences.append(ConfigDifference(key, values))
    return differences


def config_unified_diff(first: Path, second: Path) -> str:
    """A unified diff of two runs' config.yaml files."""
    before = (first / "config.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    after = (second / "config.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(
            before, after, fromfile=f"{first.name}/config.yaml", tofile=f"{second.name}/config.yaml"
        )
    )


@dataclass(frozen=True)
class Comparison:
    runs: tuple[Path, ...]
    curves: dict[str, RunCurves]  # run name -> curves
    differences: list[ConfigDifference]

    def differences_table(self) -> str:
        if not self.differences:
            return "the configs are the same"
        names = [run.name for run in self.runs]
        width = max(len(d.key) for d in self.differences)
        columns = [max(len(name), 12) for name in names]
        titles = (name.ljust(column) for name, column in zip(names, columns, strict=True))
        header = " " * width + "  " + "  ".join(titles)
        lines = [header.rstrip()]
        for difference in self.differences:
            cells = [
                _short(value).ljust(column)
                for value, column in zip(difference.values, columns, strict=True)
            ]
            lines.append((difference.key.ljust(width) + "  " + "  ".join(cells)).rstrip())
        return "\n".join(lines)


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare_runs(runs: Sequence[str | Path]) -> Comparison:
    paths = tuple(Path(run) for run in runs)
    return Comparison(
        runs=paths,
        curves={path.name: read_curves(path) for path in paths},
        differences=config_differences(list(paths)),
    )


def render_loss_overlay(
    comparison: Comparison,
    *,
    width: int = 100,
    height: int = 24,
    color: bool = False,
    eval_loss: bool = True,
) -> str:
    """The runs' train (and eval) loss curves on one text plot."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    if not color:
        plt.theme("clear")
    drawn = 0
    for name, curves in comparison.curves.items():
        series = [("train", curves.train_loss)]
        if eval_loss and curves.eval_loss:
            series.append(("eval", curves.eval_loss))
        for kind, points in series:
            if not points:
                continue
            marker = "braille" if color else MARKERS[drawn % len(MARKERS)]
            label = name if kind == "train" else f"{name} (eval)"
            steps, values = zip(*points, strict=True)
            plt.plot(list(steps), list(values), label=label, marker=marker)
            drawn += 1
    if not drawn:
        return "no loss was logged in these runs yet"
    plt.title("loss")
    plt.xlabel("step")
    text = plt.build()
    plt.clear_figure()
    return text if color else re.sub(r"\x1b\[[0-9;]*m", "", text)

"""What the Chat screen can load: the base model alone, and each run's adapter and checkpoints.

Reads only small files (config.yaml, status.json, folder names), never weights, so the list
opens at once; the choice becomes a `studio.chat.ChatTarget` when picked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.chat.targets import ChatTarget, base_target, run_target
from studio.engine.checkpoints import list_checkpoints

MAX_RUNS = 30


@dataclass(frozen=True)
class ChatChoice:
    key: str  # unique id for the list
    label: str
    run_dir: Path | None = None
    checkpoint: int | None = None
    base_source: str | None = None  # the base model alone

    def target(self) -> ChatTarget:
        if self.run_dir is None:
            assert self.base_source is not None
            return base_target(self.base_source)
        if self.base_source is not None:
            return run_target(self.run_dir, base=True)
        return run_target(self.run_dir, self.checkpoint)


def recent_run_folders(runs_dir: Path) -> list[Path]:
    """Run folders (those with config.yaml), newest first."""
    try:
        runs = [entry for entry in runs_dir.iterdir() if (entry / "config.yaml").is_file()]
    except OSError:
        return []
    runs.sort(key=lambda run: (run / "config.yaml").stat().st_mtime, reverse=True)
    return runs[:MAX_RUNS]


def run_state(run_dir: Path) -> str:
    from studio.run_files import read_json_object, str_field

    return str_field(read_json_object(run_dir / "status.json").data, "state") or "unknown"


def chat_choices(runs_dir: Path, base_source: str) -> list[ChatChoice]:
    """The base model of the current config, then per run: adapter, checkpoints, base."""
    choices = [ChatChoice(f"base:{base_source}", f"{base_source} alone (no adapter)", None,
                          base_source=base_source)]  # fmt: skip
    for run in recent_run_folders(runs_dir):
        state = run_state(run)
        if (run / "adapter").is_dir():
            choices.append(ChatChoice(f"run:{run}", f"{run.name} · adapter ({state})", run))
        for info in reversed(list_checkpoints(run)):
            if info.complete:
                choices.append(
                    ChatChoice(
                        f"checkpoint:{run}:{info.step}",
                        f"{run.name} · checkpoint-{info.step}",
                        run,
                        checkpoint=info.step,
                    )
                )
    return choices

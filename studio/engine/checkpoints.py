"""Checkpoints of a run: which are whole, which to keep, and where a resumed run starts.

The transformers Trainer writes `checkpoints/checkpoint-N/` in place: weights, optimizer,
scheduler, RNG states, then `trainer_state.json`. A crash (or a full disk, or an out-of-memory
error) in the middle leaves a folder that looks like a checkpoint but is not one. So the engine
writes `ftstudio_complete.json` into the folder after the Trainer reports the save done
(`on_save`), and everything that reads checkpoints — resume, chat, export — uses only folders
with that marker. Pruning to the newest `training.save_total_limit` happens after the marker is
written too, so a crash while saving never costs the last good checkpoint.

The marker lists every file of the folder with its size and SHA-256, so a checkpoint damaged
after it was written (a truncated copy, a bad disk, a hand edit) is told apart from a whole one:
resume goes on from the newest checkpoint that verifies, and moves a damaged one aside (never
deletes it). The trained adapter/ carries the same marker; chat and export verify it first.

No torch here: listing is cheap enough for the Runs screen.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from studio.engine.run_dir import RunDirectory, read_metrics, restore_replaced, write_atomic
from studio.run_files import int_field, read_json_object

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "ftstudio_complete.json"
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
SCHEDULER_FILE = "scheduler.pt"
RESUME_VIEW = ".resume-view"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    complete: bool

    @property
    def has_optimizer_state(self) -> bool:
        return any((self.path / name).is_file() for name in OPTIMIZER_FILES)


def _checkpoints_dir(run: RunDirectory | Path | str) -> Path:
    if isinstance(run, RunDirectory):
        return run.checkpoints_dir
    path = Path(run)
    return path if path.name == "checkpoints" else path / "checkpoints"


def list_checkpoints(run: RunDirectory | Path | str) -> list[Checkpoint]:
    """A run's checkpoints, oldest first, whole or not (`complete`)."""
    folder = _checkpoints_dir(run)
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = CHECKPOINT_NAME.match(entry.name)
        if match and entry.is_dir():
            complete = (entry / COMPLETE_MARKER).is_file()
            found.append(Checkpoint(int(match.group(1)), entry, complete))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def complete_checkpoints(run: RunDirectory | Path | str) -> list[Checkpoint]:
    return [checkpoint for checkpoint in list_checkpoints(run) if checkpoint.complete]


def last_complete_checkpoint(run: RunDirectory | Path | str) -> Checkpoint | None:
    complete = complete_checkpoints(run)
    return complete[-1] if complete else None


def mark_complete(
    folder: Path, step: int | None, mode: int | None = None, *, requested: bool = False
) -> None:
    """Record that `folder` is whole (call only after the Trainer or a save finished writing
    it): every file with its size and SHA-256, in `COMPLETE_MARKER`. `requested`: the user
    asked for it (save now), so pruning never removes it."""
    files = {}
    for entry in sorted(folder.rglob("*")):
        if entry.is_file() and not entry.is_symlink() and entry.name != COMPLETE_MARKER:
            # Flushed before the marker can claim it is there.
            _fsync(entry)
            files[entry.relative_to(folder).as_posix()] = {
                "bytes": entry.stat().st_size,
                "sha256": file_sha256(entry),
            }
    marker = {"step": step, "time": time.time(), "requested": requested, "files": files}
    write_atomic(folder / COMPLETE_MARKER, json.dumps(marker, indent=2), mode)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_complete(folder: Path, *, checksums: bool = True) -> str | None:
    """What is wrong with a marked folder (a checkpoint or adapter/), or None when every file
    its marker lists is there with the same size (and, with `checksums`, the same SHA-256).

    A folder without a marker, or with an older marker that lists no files, is not judged
    (None): runs written before markers carried checksums stay usable."""
    marker = read_json_object(folder / COMPLETE_MARKER)
    if marker.missing:
        return None
    if marker.problem:
        return marker.problem
    files = marker.data.get("files")
    if files is None:
        return None
    if not isinstance(files, dict):
        return f"{COMPLETE_MARKER} lists no files"
    root = folder.resolve()
    for name, expected in files.items():
        path = (folder / str(name)).resolve()
        if root not in path.parents:
            return f"{COMPLETE_MARKER} names a file outside the folder: {name}"
        size = int_field(expected, "bytes")
        try:
            actual = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size is not None and actual != size:
            return f"{name} is damaged: {actual:,} bytes, {size:,} when it was saved"
        wanted = expected.get("sha256") if isinstance(expected, dict) else None
        if checksums and isinstance(wanted, str):
            try:
                if file_sha256(path) != wanted:
                    return f"{name} is damaged: its checksum differs from when it was saved"
            except OSError as error:
                return f"cannot read {name}: {error.strerror or error}"
    return None


def was_requested(checkpoint: Checkpoint) -> bool:
    """The user asked for this checkpoint (save now); it stays outside `save_total_limit`."""
    return read_json_object(checkpoint.path / COMPLETE_MARKER).data.get("requested") is True


def _fsync(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def prune_checkpoints(
    run: RunDirectory | Path | str, keep: int | None, protect: str | Path | None = None
) -> list[Path]:
    """Keep the newest `keep` whole checkpoints (and `protect`, the best one by eval loss);
    drop older ones and older debris. Checkpoints the user asked for (save now) are never
    dropped and do not count against the limit.

    An incomplete checkpoint newer than the newest whole one is left alone (it may be the
    one being written)."""
    checkpoints = list_checkpoints(run)
    complete = [checkpoint for checkpoint in checkpoints if checkpoint.complete]
    if not complete:
        return []
    newest = complete[-1].step
    doomed = [checkpoint for checkpoint in checkpoints if not checkpoint.complete]
    doomed = [checkpoint for checkpoint in doomed if checkpoint.step < newest]
    if keep is not None and keep > 0:
        # Checkpoints the user asked for stay, outside the limit. Of the others the newest
        # always stays, and the best; they count against the limit, as in the Trainer's own
        # rotation.
        rotated = [c for c in complete if not was_requested(c)]
        keepers = {rotated[-1].path.name} if rotated else set()
        if protect is not None and any(c.path.name == Path(protect).name for c in rotated):
            keepers.add(Path(protect).name)
        for checkpoint in reversed(rotated):
            if len(keepers) >= keep:
                break
            keepers.add(checkpoint.path.name)
        doomed += [c for c in rotated if c.path.name not in keepers]
    removed = []
    for checkpoint in doomed:
        _remove_tree(checkpoint.path)
        removed.append(checkpoint.path)
    return removed


def _remove_tree(path: Path) -> None:
    # Rename first, so a crash half-way through deleting leaves no `checkpoint-N` that looks
    # real; then delete.
    trash = path.with_name(f".deleting-{path.name}-{os.getpid()}")
    try:
        path.rename(trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run starts: a whole checkpoint, or step 0 when it has none."""

    checkpoint: Checkpoint | None
    removed: tuple[Path, ...] = ()
    # Marked checkpoints that failed verification: (where it was moved aside, why).
    damaged: tuple[tuple[Path, str], ...] = ()

    @property
    def step(self) -> int:
        return self.checkpoint.step if self.checkpoint else 0


def resume_problem(run: RunDirectory) -> str | None:
    """Why `run` cannot be resumed now, or None when it can (stopped, failed, interrupted)."""
    from studio.engine.liveness import INTERRUPTED, effective_state

    status = run.read_status()
    state = effective_state(status)
    if state in ("stopped", "failed", INTERRUPTED):
        return None
    if state == "finished":
        return f"run {run.name} has already finished"
    return f"run {run.name} is still {state} (pid {status.get('pid')})"


def prepare_resume(run: RunDirectory) -> ResumePoint:
    """Tidy a run that is not running so it can go on from its last whole checkpoint.

    Removes checkpoints that were never finished, and the metrics of steps after the
    checkpoint (they will be trained again), so metrics.jsonl has each step once.
    """
    restore_replaced(run.adapter_dir)  # a crash while the last adapter was being swapped in
    removed = [c.path for c in list_checkpoints(run) if not c.complete]
    for path in removed:
        _remove_tree(path)
    for debris in (run.path / ".adapter.saving", run.path / RESUME_VIEW):
        shutil.rmtree(debris, ignore_errors=True)
    for leftover in run.checkpoints_dir.glob(".deleting-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    checkpoint, damaged = newest_verified_checkpoint(run)
    truncate_metrics(run.metrics_path, checkpoint.step if checkpoint else 0)
    return ResumePoint(checkpoint, tuple(removed), tuple(damaged))


def newest_verified_checkpoint(
    run: RunDirectory,
) -> tuple[Checkpoint | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint whose files verify; damaged newer ones are moved aside
    to `checkpoints/.damaged-checkpoint-N` (kept for a look, never deleted)."""
    damaged: list[tuple[Path, str]] = []
    for checkpoint in reversed(complete_checkpoints(run)):
        problem = verify_complete(checkpoint.path)
        if problem is None:
            return checkpoint, damaged
        aside = checkpoint.path.with_name(f".damaged-{checkpoint.path.name}")
        shutil.rmtree(aside, ignore_errors=True)
        checkpoint.path.rename(aside)
        damaged.append((aside, problem))
    return None, damaged


def truncate_metrics(path: Path, last_step: int) -> int:
    """Drop records after `last_step` (atomically); returns how many were dropped."""
    if not path.exists():
        return 0
    records = read_metrics(path)
    kept = [record for record in records if (int_field(record, "step") or 0) <= last_step]
    dropped = len(records) - len(kept)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept)
    write_atomic(path, text)
    return dropped


def resume_view_without_optimizer(run: RunDirectory, checkpoint: Checkpoint) -> Path:
    """A folder that shows the Trainer the checkpoint minus its optimizer state.

    For a relaunch that changes the optimizer (e.g. to a paged one): the weights, RNG and
    trainer state carry over, the optimizer starts fresh (its old state would not fit), and the
    learning-rate schedule is put back separately (see callbacks.ScheduleRestore).
    """
    view = run.path / RESUME_VIEW
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir()
    for entry in checkpoint.path.iterdir():
        if entry.name in OPTIMIZER_FILES or entry.name == SCHEDULER_FILE:
            continue
        (view / entry.name).symlink_to(entry.resolve())
    return view

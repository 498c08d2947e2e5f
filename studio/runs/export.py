"""Take a run's result out of ftstudio: the adapter (PEFT format) or a merged model.

`export_run(run)` copies the trained adapter (or the method's saved result) with a model card;
`export_run(run, merged=True)` folds the adapter into the base weights and writes a standalone
model in safetensors that loads with plain `transformers` (methods whose registry entry
`can_export`: merged adapters, and the whole models that full and freeze runs train). Both
are written into a temporary folder and renamed into place, so a failed
export never leaves a half-written folder under the name asked for. `push_to_hub` uploads an
export with huggingface_hub.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.checkpoints import last_complete_checkpoint, verify_complete
from studio.engine.run_dir import replace_directory
from studio.errors import ConfigError, ModelError
from studio.runs.catalog import load_run_config, read_run
from studio.runs.model_card import model_card

if TYPE_CHECKING:
    from studio.config import RunConfig

EXPORT_NOTE = "ftstudio_export.json"
# What a Trainer checkpoint holds beside the adapter; never part of an export.
TRAINING_STATE_FILES = {
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
    "training_args.bin",
    "ftstudio_complete.json",
}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    kind: str  # "adapter" or "merged"
    source: Path  # the adapter folder or checkpoint it came from
    source_step: int | None  # set when exported from a checkpoint
    files: tuple[str, ...]

    @property
    def size_bytes(self) -> int:
        return sum((self.path / name).stat().st_size for name in self.files)


def default_export_dir(run: Path, merged: bool) -> Path:
    return run / "exports" / ("merged" if merged else "adapter")


def trained_folder(run: Path) -> tuple[Path, int | None]:
    """The run's result: adapter/ when it was saved, else its newest complete checkpoint."""
    adapter = run / "adapter"
    if adapter.is_dir():
        return adapter, None
    checkpoint = last_complete_checkpoint(run)
    if checkpoint is not None:
        return checkpoint.path, checkpoint.step
    raise ConfigError(
        f"run {run.name} has no trained result to export: no adapter/ and no complete checkpoint",
        advice="resume it (ftstudio train --resume RUN) or set training.save_steps next time",
    )


def _check_source(source: Path) -> None:
    """Refuse to export a trained folder whose files differ from what its marker says."""
    problem = verify_complete(source)
    if problem is not None:
        raise ModelError(
            f"{source} is damaged: {problem}",
            advice="nothing was exported; resume the run or export from a checkpoint after "
            "removing the damaged folder",
        )


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(
            f"{target} exists and is not a folder",
            advice="-o names the folder to write the export into: choose a new name",
        )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"cannot write {target}: {parent} is a file, not a folder",
                    advice="choose another folder with -o",
                )
            break
    if target.exists() and any(target.iterdir()) and not (target / EXPORT_NOTE).exists():
        raise ConfigError(
            f"{target} exists and is not an ftstudio export",
            advice="choose another folder with -o, or remove it first",
        )


def export_run(
    run: str | Path,
    output: str | Path | None = None,
    *,
    merged: bool = False,
    dtype: str = "auto",
    device: str | None = None,
) -> ExportResult:
    """Export `run` into `output` (default: RUN/exports/adapter or RUN/exports/merged)."""
    run = Path(run)
    config = load_run_config(run)
    source, step = trained_folder(run)
    target = Path(output).expanduser() if output else default_export_dir(run, merged)
    _check_target(target)
    _check_source(source)
    source_kind = _source_kind(config.model.source)
    staging = target.with_name(f".{target.name}.exporting")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        if merged:
            _write_merged(config, source, staging, dtype=dtype, device=device)
        else:
            _write_adapter(config, source, staging)
        summary = read_run(run)
        card = model_card(
            run,
            config,
            summary,
            merged=merged,
            source_kind=source_kind,
            source_step=step,
            repo=str(target),
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        note = {
            "run": str(run.resolve()),
            "kind": "merged" if merged else "adapter",
            "source": str(source),
            "source_step": step,
            "time": time.time(),
        }
        (staging / EXPORT_NOTE).write_text(json.dumps(note, indent=2), encoding="utf-8")
        replace_directory(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(
            f"cannot write the export to {target}: {error.strerror or error}",
            advice="check that the folder is writable and its disk has room; nothing was "
            "left half-written",
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = tuple(sorted(entry.name for entry in target.iterdir() if entry.is_file()))
    return ExportResult(target, "merged" if merged else "adapter", source, step, files)


def _source_kind(source: str) -> str:
    """tiny, local or hub; an adapter export needs no base model, so a missing one is fine."""
    from studio.errors import StudioError
    from studio.models.sources import resolve_model_source

    try:
        return resolve_model_source(source, build_tiny=False).kind
    except StudioError:
        return "unknown"


def _write_adapter(config: RunConfig, source: Path, staging: Path) -> None:
    from studio.methods.registry import METHOD_FILE

    for entry in source.iterdir():
        if entry.name in TRAINING_STATE_FILES or entry.name.startswith("rng_state"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name)
        else:
            shutil.copy2(entry, staging / entry.name)
    if not (staging / METHOD_FILE).exists():
        (staging / METHOD_FILE).write_text(
            json.dumps({"method": config.method.model_dump(mode="json")}, indent=2),
            encoding="utf-8",
        )
    if not (staging / "tokenizer_config.json").exists():
        _base_tokenizer(config).save_pretrained(str(staging))


def _base_tokenizer(config: RunConfig) -> Any:
    from studio.models.loading import load_tokenizer

    return load_tokenizer(config.model)


def _write_merged(
    config: RunConfig, source: Path, staging: Path, *, dtype: str, device: str | None
) -> None:
    from studio.methods.registry import METHOD_FILE, get_method, read_method_settings
    from studio.models.loading import DevicePlan, load_base_model, plan_device, quiet_libraries

    # A checkpoint has no method note beside it: the run's config says which method it was.
    settings = read_method_settings(source) if (source / METHOD_FILE).exists() else config.method
    spec = get_method(settings.name)
    if not spec.can_export:
        raise ConfigError(
            f"{spec.title} cannot be merged into the base model: it adds computation the "
            "base weights cannot hold",
            advice="export the adapter instead (without --merged)",
        )
    quiet_libraries()
    plan = plan_device(config.model, config.training.precision)
    dtype_name = plan.dtype_name if dtype == "auto" else dtype
    # Merging needs full-precision base weights, also for QLoRA (never the 4-bit ones).
    plan = DevicePlan(device or plan.device, dtype_name, bf16=False, fp16=False)
    base = load_base_model(config.model, plan)
    model = spec.implementation().load(base, source, settings)
    merged = spec.implementation().merge(model)
    merged.save_pretrained(str(staging))
    tokenizer = source if (source / "tokenizer_config.json").exists() else None
    if tokenizer is not None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(tokenizer)).save_pretrained(str(staging))
    else:
        _base_tokenizer(config).save_pretrained(str(staging))


def push_to_hub(
    export: ExportResult | str | Path,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload an export folder to the Hugging Face hub; returns the repository URL.

    Needs network access and a token (`hf auth login` or HF_TOKEN)."""
    from huggingface_hub import HfApi

    folder = export.path if isinstance(export, ExportResult) else Path(export)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message or f"Upload {folder.name} exported by ftstudio",
            ignore_patterns=[EXPORT_NOTE],
        )
    except Exception as error:  # network, auth, offline mode: a message, not a traceback
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"upload to {repo_id} failed: {first}",
            advice="check network access (HF_HUB_OFFLINE unset) and `hf auth login` or HF_TOKEN; "
            f"the export is kept in {folder}",
        ) from None
    return str(url)

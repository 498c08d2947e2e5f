"""Load what a chat target needs: tokenizer, base model, trained method, on the device plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.chat.adapter_modes import AdapterModes, adapter_modes_for
from studio.chat.memory import check_gpu_room, estimate_chat_bytes, measure_gpu_room
from studio.chat.targets import ChatTarget
from studio.errors import ModelError
from studio.methods.registry import METHOD_FILE, get_method, load_trained, read_method_settings
from studio.models.loading import (
    DevicePlan,
    load_base_model,
    load_tokenizer,
    plan_device,
    quiet_libraries,
)
from studio.models.sources import ModelSource, resolve_model_source

TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def load_chat_parts(
    target: ChatTarget,
    *,
    device: str | None = None,
    check_memory: bool = True,
    on_progress: Callable[[str], object] | None = None,
) -> tuple[AdapterModes, Any, DevicePlan]:
    report = on_progress or (lambda text: None)
    quiet_libraries()
    plan = chat_device_plan(target, device)
    check_trained_folder(target.adapter_dir)
    source = resolve_model_source(target.model.source)
    settings = trained_method_settings(target)
    quantization = _quantization_config(settings, plan)
    if plan.device == "cuda" and check_memory:
        needed = estimate_chat_bytes(
            target.model,
            source.location,
            plan.dtype_name,
            quantized=quantization is not None,
            adapter_dir=target.adapter_dir,
        )
        if needed is not None:
            report("checking free GPU memory")
            check_gpu_room(
                measure_gpu_room(needed), what=target.label, run_training=target.run_is_training
            )
    report(f"loading {source.name} on {plan.device} as {plan.dtype_name}")
    tokenizer = load_tokenizer(target.model, _tokenizer_source(target, source))

    def load_base() -> Any:
        return load_base_model(target.model, plan, quantization_config=quantization, source=source)

    model = load_base()
    if target.adapter_dir is not None:
        report(f"loading the trained method from {target.adapter_dir}")
        model = _load_method_checked(model, target)
    model.eval()

    def load_base_copy() -> Any:
        # Only for methods that leave no base behaviour in the trained model.
        if plan.device == "cuda" and check_memory:
            needed = estimate_chat_bytes(
                target.model, source.location, plan.dtype_name, quantized=quantization is not None
            )
            if needed is not None:
                check_gpu_room(
                    measure_gpu_room(needed),
                    what="a second copy of the base model for compare mode",
                    run_training=target.run_is_training,
                )
        return load_base()

    modes = adapter_modes_for(model, has_adapter=target.has_adapter, load_base=load_base_copy)
    return modes, tokenizer, plan


def chat_device_plan(target: ChatTarget, device: str | None) -> DevicePlan:
    """The GPU when there is one (bf16 / fp16), else the CPU in float32; `device` overrides."""
    import torch

    if device not in (None, "auto", "cpu", "cuda"):
        raise ModelError(f"unknown device '{device}'", advice="use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("no CUDA GPU is available", advice="leave out --device, or use cpu")
    if device == "cpu":
        dtype = target.model.dtype if target.model.dtype != "auto" else "float32"
        return DevicePlan(device="cpu", dtype_name=dtype, bf16=False, fp16=False)
    return plan_device(target.model, "auto")


def _quantization_config(settings: Any, plan: DevicePlan) -> Any:
    """The same 4-bit loading the method trained on (QLoRA), so the adapter fits its base."""
    if settings is None:
        return None
    from studio.methods.registry import get_method

    implementation = get_method(settings.name).implementation()
    if not hasattr(implementation, "quantization_config"):
        return None
    return implementation.quantization_config(settings, plan)


def _tokenizer_source(target: ChatTarget, base: ModelSource) -> ModelSource:
    """A bare adapter folder that saved its tokenizer (with the chat template it was trained
    with) uses that one; runs and checkpoints use the run's model settings.
    """
    folder = target.adapter_dir
    if target.kind == "adapter" and folder is not None and _has_tokenizer(folder):
        return ModelSource("local", str(folder), str(folder))
    return base


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_trained_folder(folder: Path | None) -> None:
    """A ModelError when a trained folder's files differ from what its completion marker says
    (a truncated copy, a damaged disk), before anything is loaded from it."""
    if folder is None:
        return
    from studio.engine.checkpoints import verify_complete

    problem = verify_complete(folder)
    if problem is not None:
        raise ModelError(
            f"the trained folder {folder} is damaged: {problem}",
            advice="pick another checkpoint of the run (--checkpoint), or resume or re-run it",
        )


def _load_method_checked(model: Any, target: ChatTarget) -> Any:
    folder = target.adapter_dir
    assert folder is not None
    try:
        return load_method(model, target)
    except Exception as error:  # boundary: safetensors, torch and peft raise many types
        if isinstance(error, ModelError) or not _is_load_error(error):
            raise
        if not folder.exists():
            raise ModelError(
                f"{folder.name} was deleted while it was loading",
                advice="the run removes old checkpoints as it saves new ones "
                "(training.save_total_limit); pick a newer checkpoint",
            ) from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ModelError(
            f"cannot load the trained method from {folder}: {first_line}",
            advice=f"check that it was trained on {target.model.source} (a different base "
            "model gives mismatched shapes) and that its files are complete",
        ) from None


def _is_load_error(error: Exception) -> bool:
    """An error that a damaged or mismatched trained folder causes while loading."""
    return isinstance(error, (OSError, ValueError, KeyError, RuntimeError)) or (
        type(error).__name__ == "SafetensorError"
    )


def load_method(base_model: Any, target: ChatTarget) -> Any:
    """Put the target's trained method on `base_model` through the method registry.

    A folder with ftstudio's method note goes through `load_trained`. A Trainer checkpoint has
    no note, so the run config's method settings say which method family reads it.
    """
    folder = target.adapter_dir
    assert folder is not None
    if (folder / METHOD_FILE).is_file() or target.method is None:
        return load_trained(base_model, folder)
    return get_method(target.method.name).implementation().load(base_model, folder, target.method)


def trained_method_settings(target: ChatTarget) -> Any:
    """The method settings of the target's trained folder (None for a base model)."""
    if target.adapter_dir is None:
        return None
    if (target.adapter_dir / METHOD_FILE).is_file() or target.method is None:
        return read_method_settings(target.adapter_dir)
    return target.method

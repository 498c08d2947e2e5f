"""Resume restores every trained tensor from the checkpoint, or fails loudly.

The transformers Trainer resumes a run by reading the checkpoint's `model.safetensors` (or the
peft adapter) into the model without a strict check. Two ways that goes silently wrong:

- a full or freeze checkpoint is written by `save_pretrained` in the model's published layout,
  which transformers 5 renames on loading (GPT-NeoX's `embed_out`, a mixture-of-experts'
  per-expert matrices): read as is, those tensors match no name and keep the base weights;
- a checkpoint that lacks some trained tensor (written by another version, cut short) trains on
  from whatever the model held.

`restore_on_resume(trainer, settings)` makes the Trainer load whole-model checkpoints through
`studio.methods.full.load_weights` (transformers' own loading, every tensor required), and after
any method's load compares every trained tensor of the model with the checkpoint's copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.errors import ModelError


def restore_on_resume(trainer: Any, settings: Any) -> None:
    """Wrap `trainer._load_from_checkpoint` (called once, when `train` resumes)."""
    from studio.methods.registry import get_method

    spec = get_method(settings.name)
    library_load = trainer._load_from_checkpoint

    def load_checked(resume_from_checkpoint: str, model: Any = None) -> None:
        target = model if model is not None else trainer.model
        folder = Path(resume_from_checkpoint)
        try:
            if spec.whole_model:
                from studio.methods.full import load_weights

                load_weights(target, folder)
            else:
                library_load(resume_from_checkpoint, model)
            unrestored = unrestored_tensors(target, folder, whole_model=spec.whole_model)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ModelError(
                f"cannot resume from {folder.name}: {first}",
                advice="the checkpoint does not fit this model; resume from another "
                "checkpoint, or start the run again",
            ) from None
        if unrestored:
            raise ModelError(
                f"resuming from {folder.name} would not restore {len(unrestored)} trained "
                f"tensors ({', '.join(unrestored[:4])}): training would go on from the base "
                "weights for them",
                advice="the checkpoint was written by another version of the method or is "
                "incomplete; resume from another checkpoint, or start the run again",
            )

    trainer._load_from_checkpoint = load_checked


def unrestored_tensors(model: Any, folder: Path, *, whole_model: bool) -> list[str]:
    """Names of trained tensors of `model` that differ from (or are absent in) `folder`."""
    import torch

    if whole_model:
        # load_weights required every tensor and copied them; nothing can be left behind.
        return []
    saved = _saved_tensors(folder)
    if _is_peft(model):
        from peft import get_peft_model_state_dict

        expected = get_peft_model_state_dict(model)
    else:
        expected = {
            name: parameter
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }
    unrestored = []
    for name, tensor in expected.items():
        copy = saved.get(name)
        if (
            copy is None
            or copy.shape != tensor.shape
            or not torch.equal(copy.to(tensor.device, tensor.dtype), tensor.detach())
        ):
            unrestored.append(name)
    return unrestored


def _saved_tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "base_model")

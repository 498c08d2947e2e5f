"""Undo process-wide patches that a training run's libraries make to model code.

Liger's `apply_liger_kernel_to_<model>` (called by the transformers Trainer when
`use_liger_kernel` is on) replaces names in the model's modeling module (`LlamaRMSNorm`,
`LlamaMLP`, `apply_rotary_pos_emb`), the causal-LM class's `forward`, and with its plain
cross-entropy option `torch.nn.functional.cross_entropy`. Those are module and class
attributes of the whole process: the studio trains in its own process, so without this every
later model of that type (a second run with `liger_kernels: off`, a chat model) would be built
with Liger modules. `isolated_model_code()` records those attributes before a run and puts back
whatever changed after it; the trained model instance keeps its kernels.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

# Patched by Liger outside the model's own modeling module.
EXTRA_MODULES = ("transformers.loss.loss_utils", "torch.nn.functional")
MODEL_PACKAGE = "transformers.models."


@contextmanager
def isolated_model_code() -> Iterator[None]:
    """Restore every transformers model module and class (and the loss functions) on exit."""
    saved = _snapshot()
    try:
        yield
    finally:
        restore(saved)


def _watched_modules() -> list[ModuleType]:
    names = [name for name in list(sys.modules) if name.startswith(MODEL_PACKAGE)]
    names += [name for name in EXTRA_MODULES if name in sys.modules]
    return [module for name in names if isinstance(module := sys.modules.get(name), ModuleType)]


Snapshot = list[tuple[Any, dict[str, Any]]]


def _snapshot() -> Snapshot:
    """(owner, its attributes) for each watched module and each class defined in it."""
    saved: Snapshot = []
    for module in _watched_modules():
        attributes = dict(vars(module))
        saved.append((module, attributes))
        for value in attributes.values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                saved.append((value, dict(vars(value))))
    return saved


def restore(saved: Snapshot) -> list[str]:
    """Put back every attribute that changed; the names restored (for a log or a test)."""
    restored: list[str] = []
    for owner, attributes in saved:
        current = vars(owner)
        for name, value in attributes.items():
            if current.get(name, _MISSING) is not value:
                setattr(owner, name, value)
                restored.append(f"{owner.__name__}.{name}")
        if isinstance(owner, type):
            # A method set on a class that used to inherit it (a patched forward, say).
            for name in [n for n, v in current.items() if n not in attributes and callable(v)]:
                delattr(owner, name)
                restored.append(f"{owner.__name__}.{name}")
    return restored


_MISSING = object()

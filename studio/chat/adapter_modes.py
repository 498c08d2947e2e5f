"""The trained method switched on or off: how compare mode gets the base model's answer.

A known bug in another studio produced both sides of a comparison with the fine-tuned model.
Two ways it happens: calling peft's `model.disable_adapter()` without `with` (it is a context
manager; the call alone does nothing), or a method that changed the weights themselves (full
fine-tune, freeze), where there is no adapter to switch off. So:

- PEFT models (LoRA, QLoRA, IA3, prompt / prefix tuning): `with model.disable_adapter():`,
  the same weights with the adapter's contribution removed, no extra memory.
- A method whose loaded model offers the same `disable_adapter()` context manager (a custom
  bottleneck adapter can) is switched the same way.
- Anything else (freeze and full fine-tune write new weights; nothing remains of the base in
  the trained model): a second, untouched copy of the base model, loaded on first use. It
  costs the base model's memory again, checked before loading on a GPU.

`tests/chat/test_chat_model.py` proves the base side equals a freshly loaded plain model.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any


class AdapterModes:
    """Gives the model to run, with the trained method on (`adapter=True`) or off."""

    #: How the base answer is produced, for the UI: "disable_adapter", "separate base copy",
    #: or "no adapter" (the target is a base model).
    strategy: str = ""

    def use(self, adapter: bool) -> AbstractContextManager[Any]:
        """`with modes.use(adapter=False) as model:` runs `model` as the base model."""
        raise NotImplementedError

    def models(self) -> list[Any]:
        """Every model instance held (to free them)."""
        raise NotImplementedError


class BaseOnly(AdapterModes):
    strategy = "no adapter"

    def __init__(self, model: Any) -> None:
        self.model = model

    @contextlib.contextmanager
    def use(self, adapter: bool) -> Iterator[Any]:
        yield self.model

    def models(self) -> list[Any]:
        return [self.model]


class DisableAdapterContext(AdapterModes):
    """peft's `disable_adapter()` context: the base weights, the adapter bypassed."""

    strategy = "disable_adapter"

    def __init__(self, model: Any) -> None:
        self.model = model

    @contextlib.contextmanager
    def use(self, adapter: bool) -> Iterator[Any]:
        if adapter:
            yield self.model
            return
        with self.model.disable_adapter():
            yield self.model

    def models(self) -> list[Any]:
        return [self.model]


class SeparateBaseCopy(AdapterModes):
    """A second, untouched base model for methods that leave no base behind in the trained one.

    The trained model cannot give base behaviour when the method rewrote the weights, so the
    only honest base answer comes from another instance of the base model. It is loaded on
    first use by `load_base` (which checks GPU room first), not up front, so chatting with the
    trained model alone costs nothing extra.
    """

    strategy = "separate base copy"

    def __init__(self, model: Any, load_base: Callable[[], Any]) -> None:
        self.model = model
        self._load_base = load_base
        self._base: Any = None
        self._loading = threading.Lock()

    @contextlib.contextmanager
    def use(self, adapter: bool) -> Iterator[Any]:
        if adapter:
            yield self.model
            return
        with self._loading:
            if self._base is None:
                self._base = self._load_base()
                self._base.eval()
        yield self._base

    def models(self) -> list[Any]:
        return [self.model] + ([self._base] if self._base is not None else [])


def adapter_modes_for(
    model: Any, *, has_adapter: bool, load_base: Callable[[], Any]
) -> AdapterModes:
    """Pick how to get base behaviour from what the method registry loaded."""
    if not has_adapter:
        return BaseOnly(model)
    if _is_peft_model(model) or _offers_disable_adapter(model):
        return DisableAdapterContext(model)
    return SeparateBaseCopy(model, load_base)


def _is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _offers_disable_adapter(model: Any) -> bool:
    # Not to be confused with transformers' `disable_adapters()` (plural), a plain method for
    # adapters loaded through transformers' own PEFT integration.
    return callable(getattr(type(model), "disable_adapter", None))

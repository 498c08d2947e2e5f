"""A stand-in for bitsandbytes' paged-memory manager, as far as telemetry looks at it."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest


class FakePagedTensor:
    """What bitsandbytes' get_paged returns, as far as telemetry looks at it."""

    def __init__(self, elements: int, element_size: int = 4, device: int = 0) -> None:
        self._elements, self._element_size = elements, element_size
        self.is_paged = True
        self.page_deviceid = device

    def numel(self) -> int:
        return self._elements

    def element_size(self) -> int:
        return self._element_size


def install_fake_bitsandbytes(monkeypatch: pytest.MonkeyPatch, tensors: list[object]) -> None:
    """Make `bitsandbytes.functional.GlobalPageManager` report `tensors` as paged."""
    functional = ModuleType("bitsandbytes.functional")
    manager = SimpleNamespace(paged_tensors=tensors)
    manager_class = type("GlobalPageManager", (), {"_instance": manager})
    functional.GlobalPageManager = manager_class
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", functional)

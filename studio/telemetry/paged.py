"""bitsandbytes paged-optimizer state: how much there is, and how much has spilled to host.

bitsandbytes (0.50) allocates paged optimizer state with `bitsandbytes.functional.get_paged`:
CUDA managed (unified) memory wrapped in a tensor flagged `is_paged = True` with
`page_deviceid = <cuda index>`, and `Optimizer8bit.get_state_buffer` appends each one to
`GlobalPageManager.get_instance().paged_tensors` (only for parameters of >= 1e5 elements; smaller
state stays ordinary). The driver migrates managed pages between GPU and host on demand, and
neither torch nor bitsandbytes reports where the pages currently are, so residency is an
estimate from NVML's numbers; see `estimate_residency` and docs/telemetry.md.

bitsandbytes never empties that page manager nor frees the managed buffers (its library has no
free function): `release_paged_state` does both when a run ends, so a second paged run in the
same process is not added to the first in the memory panel, and its memory comes back.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PagedTotals:
    """Paged state registered with bitsandbytes' page manager for one CUDA device."""

    cuda_index: int
    paged_bytes: int
    tensor_count: int


def read_paged_totals() -> tuple[PagedTotals, ...]:
    """Sum the page manager's tensors per device; () when bitsandbytes is not in use.

    Never imports bitsandbytes and never creates its page manager: both only exist once an
    optimizer made them. Every attribute is read defensively because this is private state.
    """
    tensors = getattr(_page_manager(), "paged_tensors", None)
    if not tensors:
        return ()
    try:
        tensors = list(tensors)  # a copy: the trainer thread may append while we sum
    except TypeError:
        return ()
    totals: dict[int, list[int]] = {}
    for tensor in tensors:
        size = _tensor_bytes(tensor)
        if size is None:
            continue
        device = getattr(tensor, "page_deviceid", None)
        entry = totals.setdefault(device if isinstance(device, int) else 0, [0, 0])
        entry[0] += size
        entry[1] += 1
    return tuple(PagedTotals(index, size, count) for index, (size, count) in sorted(totals.items()))


def _page_manager() -> Any:
    functional = sys.modules.get("bitsandbytes.functional")
    manager_class = getattr(functional, "GlobalPageManager", None)
    return getattr(manager_class, "_instance", None)


def release_paged_state(
    optimizer: Any = None, free: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """After a run: drop `optimizer`'s state, empty the page manager and free each managed
    buffer that nothing holds any more. (registered bytes, freed bytes); (0, 0) without paged
    state. A buffer still referenced somewhere is left allocated, never freed under its user.

    `free(pointer)` releases one managed allocation; by default CUDA runtime's `cudaFree`.
    """
    manager = _page_manager()
    registered = getattr(manager, "paged_tensors", None)
    if not isinstance(registered, list) or not registered:
        return 0, 0
    state = getattr(optimizer, "state", None)
    if state is not None and hasattr(state, "clear"):
        state.clear()  # the optimizer's moments are these buffers
    entries = []
    for tensor in registered:
        try:
            entries.append((weakref.ref(tensor), int(tensor.data_ptr()), _tensor_bytes(tensor)))
        except Exception:  # not a tensor after all: nothing to free
            continue
    registered.clear()  # in place: the optimizers hold the same manager
    gc.collect()
    total = sum(size or 0 for _, _, size in entries)
    dead = [(pointer, size or 0) for ref, pointer, size in entries if ref() is None]
    if not dead:
        return total, 0
    free = free or _cuda_free()
    if free is None:
        return total, 0
    for pointer, _ in dead:
        free(pointer)
    return total, sum(size for _, size in dead)


def _cuda_free() -> Callable[[int], None] | None:
    """cudaFree from the CUDA runtime already loaded in this process, or None."""
    import ctypes

    import torch

    if not torch.cuda.is_initialized():  # paged state implies CUDA is up: anything else is not
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = [line.split()[-1] for line in maps if "libcudart.so" in line]
    except OSError:
        return None
    if not paths:
        return None
    runtime = ctypes.CDLL(paths[0])
    torch.cuda.synchronize()  # no kernel may still use a buffer about to be freed

    def free(pointer: int) -> None:
        runtime.cudaFree(ctypes.c_void_p(pointer))

    return free


def _tensor_bytes(tensor: Any) -> int | None:
    if not getattr(tensor, "is_paged", True):
        return None
    try:
        return int(tensor.numel()) * int(tensor.element_size())
    except Exception:  # whatever bitsandbytes put there, it is not a tensor
        return None


def estimate_residency(
    paged_bytes: int,
    device_used_bytes: int | None,
    process_used_bytes: Sequence[int | None] | None,
    baseline_bytes: int,
) -> tuple[int | None, int | None]:
    """(resident, spilled) bytes of paged state, or (None, None) when it cannot be estimated.

    NVML's device-level "used" counts managed pages resident on the GPU, while NVML's
    per-process figures (and torch's reserved) do not. So the memory used on the device that no
    process accounts for, less what was unaccounted before any paged state existed (driver
    reservations: the baseline), approximates the resident paged state. Clamped to
    [0, paged_bytes]; whatever is not resident is taken as spilled to host.
    """
    if paged_bytes <= 0:
        return 0, 0
    if device_used_bytes is None or process_used_bytes is None:
        return None, None
    if any(used is None for used in process_used_bytes):
        return None, None  # one unknown process could hold any amount: no honest estimate
    unaccounted = device_used_bytes - sum(used for used in process_used_bytes if used is not None)
    resident = min(max(unaccounted - baseline_bytes, 0), paged_bytes)
    return resident, paged_bytes - resident


def unaccounted_bytes(
    device_used_bytes: int | None, process_used_bytes: Sequence[int | None] | None
) -> int | None:
    """Device memory used that no listed process accounts for (None if not computable)."""
    if device_used_bytes is None or process_used_bytes is None:
        return None
    if any(used is None for used in process_used_bytes):
        return None
    return max(device_used_bytes - sum(used for used in process_used_bytes if used), 0)


class ResidencyEstimator:
    """Keeps each GPU's baseline: the unaccounted memory seen while no paged state existed.

    The latest such reading is used (not the minimum), so the baseline reflects the state just
    before the optimizer paged its state in. Without any pre-paging reading the baseline is 0,
    which overstates residency (and understates spill) by the driver's reservation.
    """

    def __init__(self) -> None:
        self._baselines: dict[int, int] = {}

    def baseline(self, gpu_index: int) -> int:
        return self._baselines.get(gpu_index, 0)

    def update(
        self,
        gpu_index: int,
        paged_bytes: int,
        device_used_bytes: int | None,
        process_used_bytes: Sequence[int | None] | None,
    ) -> tuple[int | None, int | None]:
        if paged_bytes <= 0:
            unaccounted = unaccounted_bytes(device_used_bytes, process_used_bytes)
            if unaccounted is not None:
                self._baselines[gpu_index] = unaccounted
            return 0, 0
        return estimate_residency(
            paged_bytes, device_used_bytes, process_used_bytes, self.baseline(gpu_index)
        )

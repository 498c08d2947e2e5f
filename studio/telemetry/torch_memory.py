"""torch's CUDA caching-allocator statistics, read only when torch already uses CUDA.

Telemetry never imports torch and never initialises CUDA: it looks for torch in
`sys.modules` and asks `torch.cuda.is_initialized()`. Initialising CUDA from the sampler's
thread would cost seconds and change the process (e.g. forked data-loader workers break).
"""

from __future__ import annotations

import sys
from typing import Any

from studio.telemetry.snapshots import TorchMemory


def cuda_torch() -> Any | None:
    """The imported torch module if this process has already initialised CUDA, else None."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
    except Exception:  # a half-imported or broken torch must not break polling
        return None
    return torch


def read_torch_memory() -> tuple[TorchMemory, ...]:
    """One entry per CUDA device torch sees; () when torch or CUDA is not in use."""
    torch = cuda_torch()
    if torch is None:
        return ()
    try:
        count = int(torch.cuda.device_count())
    except Exception:
        return ()
    return tuple(_read_device(torch, index) for index in range(count))


def _read_device(torch: Any, index: int) -> TorchMemory:
    try:
        stats: dict[str, Any] = dict(torch.cuda.memory_stats(index))
    except Exception:  # an allocator backend without stats
        return TorchMemory(cuda_index=index)

    def stat(key: str) -> int | None:
        value = stats.get(key)
        return int(value) if isinstance(value, (int, float)) else None

    return TorchMemory(
        cuda_index=index,
        allocated_bytes=stat("allocated_bytes.all.current"),
        reserved_bytes=stat("reserved_bytes.all.current"),
        peak_allocated_bytes=stat("allocated_bytes.all.peak"),
        num_alloc_retries=stat("num_alloc_retries"),
        num_ooms=stat("num_ooms"),
    )


def cuda_device_uuids() -> list[str | None]:
    """UUID of each CUDA device as torch numbers them (to match NVML's numbering)."""
    torch = cuda_torch()
    if torch is None:
        return []
    uuids: list[str | None] = []
    try:
        for index in range(int(torch.cuda.device_count())):
            uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
            uuids.append(str(uuid) if uuid is not None else None)
    except Exception:
        return []
    return uuids

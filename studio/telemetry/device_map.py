"""Match torch's CUDA device numbers to NVML's.

They differ when CUDA_VISIBLE_DEVICES hides or reorders GPUs (CUDA 0 may be NVML 3), so a
torch or paged figure must be shown next to the right NVML device. UUIDs are the reliable
key; CUDA_VISIBLE_DEVICES as integers is the fallback; otherwise the numbers are taken as equal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from studio.telemetry.snapshots import GpuSnapshot


def _bare_uuid(uuid: str) -> str:
    # NVML says "GPU-1a2b...", torch says "1a2b..."; compare without the prefix.
    text = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def map_cuda_to_gpu(
    cuda_count: int,
    gpus: Sequence[GpuSnapshot],
    cuda_uuids: Sequence[str | None] = (),
    visible_devices: str | None = None,
) -> dict[int, int | None]:
    """Map each CUDA index to a GpuSnapshot.index, or None when no GPU view matches it."""
    if visible_devices is None:
        visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    by_uuid = {_bare_uuid(gpu.uuid): gpu.index for gpu in gpus if gpu.uuid}
    known = {gpu.index for gpu in gpus}
    visible: list[int] | None = None
    if visible_devices is not None and visible_devices.strip():
        try:
            visible = [int(part) for part in visible_devices.split(",") if part.strip()]
        except ValueError:
            visible = None  # UUIDs or MIG names in CUDA_VISIBLE_DEVICES: rely on torch's uuids
    mapping: dict[int, int | None] = {}
    for cuda_index in range(cuda_count):
        uuid = cuda_uuids[cuda_index] if cuda_index < len(cuda_uuids) else None
        if uuid and _bare_uuid(uuid) in by_uuid:
            mapping[cuda_index] = by_uuid[_bare_uuid(uuid)]
        elif visible is not None:
            candidate = visible[cuda_index] if cuda_index < len(visible) else None
            mapping[cuda_index] = candidate if candidate in known else None
        else:
            mapping[cuda_index] = cuda_index if cuda_index in known else None
    return mapping

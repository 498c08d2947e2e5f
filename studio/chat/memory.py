"""Will a chat model fit on the GPU next to what is already there (a training run, say)?

The estimate comes from the model's config (parameters counted on the meta device, no weights
read), falling back to the size of the weight files. Free memory comes from telemetry (NVML),
plus what this process's torch allocator has reserved but not used (a training run in the
same process leaves such cached blocks that a new model can take), falling back to
`torch.cuda.mem_get_info`. On CPU nothing is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.config import ModelSettings
from studio.errors import ModelError
from studio.formatting import gib
from studio.telemetry.snapshots import TelemetrySnapshot

if TYPE_CHECKING:
    from transformers import PretrainedConfig

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FOUR_BIT_BYTES = 0.55  # NF4 weights plus quantization constants, per parameter
KV_CACHE_TOKENS = 4096  # room for one conversation of this many tokens
OVERHEAD_FRACTION = 0.10  # activations, allocator fragmentation
OVERHEAD_FLOOR_BYTES = 256 * 1024**2
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class GpuRoom:
    """Free memory on the GPU a chat model would load onto, next to what it needs."""

    needed_bytes: int
    free_bytes: int | None  # None: not known (then loading is not refused)
    gpu_label: str

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes <= self.free_bytes


def estimate_chat_bytes(
    model: ModelSettings,
    location: str,
    dtype_name: str,
    *,
    quantized: bool = False,
    adapter_dir: Path | None = None,
) -> int | None:
    """GPU memory to chat with this model: weights, adapter, KV cache, overhead. None: unknown."""
    element_bytes = DTYPE_BYTES.get(dtype_name, 4)
    config = _model_config(model, location)
    counts = _count_parameters(config) if config is not None else None
    if counts is not None:
        linear, other = counts
        # bitsandbytes quantizes the linear layers only: embeddings, the output layer and
        # the norms stay in the compute dtype (about 1.5 GB of an 8B model's 4-bit load).
        weights = int(linear * (FOUR_BIT_BYTES if quantized else element_bytes))
        weights += other * element_bytes
    else:
        on_disk = folder_weight_bytes(Path(location))
        if not on_disk:
            return None
        weights = on_disk  # files hold the model in its saved dtype: close enough
    if adapter_dir is not None:
        weights += folder_weight_bytes(adapter_dir)
    cache = _kv_cache_bytes(config, DTYPE_BYTES.get(dtype_name, 2)) if config is not None else 0
    working = weights + cache
    return working + max(int(working * OVERHEAD_FRACTION), OVERHEAD_FLOOR_BYTES)


def folder_weight_bytes(folder: Path) -> int:
    """Size of the weight files directly in `folder` (0 when there are none or it is missing)."""
    try:
        return sum(
            entry.stat().st_size
            for entry in folder.iterdir()
            if entry.is_file()
            and entry.suffix in WEIGHT_SUFFIXES
            and not entry.name.startswith(("optimizer", "scheduler", "rng_state", "training"))
        )
    except OSError:
        return 0


def gpu_room(needed_bytes: int, snapshot: TelemetrySnapshot, gpu_index: int | None) -> GpuRoom:
    """Compare what is needed with what NVML says is free on `gpu_index` (NVML numbering)."""
    gpu = snapshot.gpu(gpu_index) if gpu_index is not None else None
    if gpu is None or gpu.memory_free_bytes is None:
        return GpuRoom(needed_bytes, None, "GPU")
    free = gpu.memory_free_bytes
    torch_memory = snapshot.torch_for_gpu(gpu.index)
    if torch_memory and torch_memory.reserved_bytes and torch_memory.allocated_bytes is not None:
        free += max(torch_memory.reserved_bytes - torch_memory.allocated_bytes, 0)
    return GpuRoom(needed_bytes, free, f"GPU{gpu.index}")


def check_gpu_room(room: GpuRoom, *, what: str, run_training: bool) -> None:
    """Raise a ModelError that says what to do when `room` does not fit."""
    if room.fits:
        return
    beside = " beside the training run" if run_training else ""
    advice = [
        "chat on the CPU instead (slower): `ftstudio chat ... --device cpu`",
        "or wait until the run has finished" if run_training else "or free GPU memory first",
    ]
    raise ModelError(
        f"not enough GPU memory to load {what}{beside}: it needs about "
        f"{gib(room.needed_bytes)} GiB and {room.gpu_label} has {gib(room.free_bytes)} GiB free",
        advice="; ".join(advice),
    )


def measure_gpu_room(needed_bytes: int) -> GpuRoom:
    """Free memory on CUDA device 0 now: telemetry first, torch's own figure as a fallback."""
    import torch

    from studio.telemetry import TelemetrySampler
    from studio.telemetry.device_map import map_cuda_to_gpu

    sampler = TelemetrySampler()
    try:
        snapshot = sampler.sample_once()
    finally:
        sampler.close()
    uuids: list[str | None] = []
    try:
        uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
        uuids = [str(uuid) if uuid is not None else None]
    except Exception:  # no usable CUDA device: the mapping falls back to numbers
        uuids = []
    mapping = map_cuda_to_gpu(1, snapshot.gpus, uuids)
    room = gpu_room(needed_bytes, snapshot, mapping.get(0))
    if room.free_bytes is not None:
        return room
    try:
        free, _total = torch.cuda.mem_get_info(0)
    except Exception:  # no NVML and no CUDA view: do not refuse on a guess
        return room
    return GpuRoom(needed_bytes, int(free), "GPU0")


def _model_config(model: ModelSettings, location: str) -> PretrainedConfig | None:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            location, revision=model.revision, trust_remote_code=model.trust_remote_code
        )
    except Exception:  # unknown architecture, offline hub id...: fall back to file sizes
        return None


def _count_parameters(config: PretrainedConfig) -> tuple[int, int] | None:
    """(weights of the linear layers bitsandbytes would quantize, every other parameter),
    counted once each (tied embeddings too) on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception:
        return None
    output = skeleton.get_output_embeddings()  # transformers keeps it out of 4-bit loading
    quantizable = {
        id(module.weight)
        for module in skeleton.modules()
        if isinstance(module, torch.nn.Linear) and module is not output
    }
    linear = other = 0
    for parameter in skeleton.parameters():
        if id(parameter) in quantizable:
            linear += parameter.numel()
        else:
            other += parameter.numel()
    return linear, other


def _kv_cache_bytes(config: PretrainedConfig, element_bytes: int) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_attention_heads", None)
    hidden = getattr(text, "hidden_size", None)
    if not (layers and heads and hidden):
        return 0
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    tokens = min(getattr(text, "max_position_embeddings", None) or KV_CACHE_TOKENS, KV_CACHE_TOKENS)
    return 2 * layers * kv_heads * head_dim * tokens * element_bytes

"""How much memory a fine-tuning run needs, estimated from the model's config alone.

No weights are read and torch is not imported: the Models and Config screens call this for
every method while the user browses. The shape of the model (vocabulary, width, layers, heads,
feed-forward size, tied embeddings, experts) is a `studio.models.shape.ModelShape`, read from
a transformers config object, a `config.json` dict or folder, or a `ModelInfo` (approximate
when it lacks the full shape). What a method trains and keeps (trainable and added
parameters, layers with gradients, extra activations, a base loaded its own way) the method
states itself: its module's `memory_plan` (`studio.methods.protocol.TrainingMethod`). This
module turns shape and plan into bytes, counted the way transformers, peft and bitsandbytes
lay them out:

- parameters: as the architecture lays them out (`ModelShape.layout`): separate or fused
  q/k/v and gate/up projections (Phi-3, GPT-2's Conv1D, GPT-NeoX), biases, extra norms
  (Gemma, q/k norms), learned position embeddings (GPT-2), and a mixture's experts as the
  fused 3-D tensors transformers 5 keeps (plus a shared expert and the router);
- weights: every base parameter in the load dtype (bf16 on a GPU, fp32 on CPU); QLoRA's
  linear layers at 4 bits plus their quantization constants, with the rest upcast to fp32 by
  `prepare_model_for_kbit_training` and fused experts unquantized (bitsandbytes quantizes
  linear layers only; QLoRA refuses such models); adapter weights in fp32 (as peft keeps
  them), LoRA on fused experts as peft's ParamWrapper makes it (rank x experts); the base
  weights that full and freeze fine-tunes train are fp32 too (`studio.methods.precision`);
- gradients: one per trainable parameter, in fp32;
- optimizer state: AdamW keeps two moments per trainable parameter (8-bit variants 1 byte
  each, paged 32-bit 4 bytes each, SGD none);
- activations: what autograd keeps between forward and backward for a batch of
  `batch_size` x `max_length` tokens, counted tensor by tensor for a Llama-style layer, which
  depends on which weights train (a frozen linear layer keeps no copy of its input), plus the
  logits and the loss; with gradient checkpointing, one hidden state per layer plus one layer
  recomputed at a time;
- overhead: the CUDA context on a GPU (none on CPU).

Example::

    >>> from transformers import LlamaConfig
    >>> from studio.config import QLoraSettings
    >>> from studio.formatting import GIB
    >>> from studio.methods.memory import estimate_memory
    >>> llama_8b = LlamaConfig(hidden_size=4096, intermediate_size=14336,
    ...     num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    ...     vocab_size=128256)
    >>> estimate = estimate_memory(llama_8b, QLoraSettings(rank=16), batch_size=1,
    ...     max_length=2048, gradient_checkpointing=True, optimizer="paged_adamw_8bit",
    ...     precision="bf16")
    >>> estimate.trainable_parameters
    41943040
    >>> round(estimate.weights / GIB, 2), round(estimate.total / GIB, 2)
    (7.42, 11.12)
    >>> print(estimate.summary())  # doctest: +ELLIPSIS
    weights 7.42 GiB + gradients 0.16 GiB + ... = 11.12 GiB

`tests/methods/test_methods_memory.py` checks the estimate against the peak memory of real training
steps on CPU (process RSS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.formatting import gib
from studio.methods.memory_plan import TRAINED_BYTES, MemoryPlan
from studio.models.shape import ModelShape

CUDA_CONTEXT_BYTES = 512 * 1024**2


# ------------------------------------------------------------------ the result


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by part. `total` is what the device must hold at the peak."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int = 0
    total_parameters: int = 0
    trainable_parameters: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    @property
    def trainable_share(self) -> float:
        return self.trainable_parameters / self.total_parameters if self.total_parameters else 0.0

    def parts(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "overhead": self.overhead,
        }

    def summary(self) -> str:
        parts = " + ".join(f"{name} {gib(value, 2)} GiB" for name, value in self.parts().items())
        return f"{parts} = {gib(self.total, 2)} GiB"


# ------------------------------------------------------------------ settings and optimizer state


def _settings(method: Any) -> Any:
    if isinstance(method, str):
        from studio.config import method_defaults

        return method_defaults(method)
    return method


def optimizer_state_bytes(optimizer: str, trainable: int, parameter_bytes: int) -> int:
    """Bytes of optimizer state for `trainable` parameters stored in `parameter_bytes` each."""
    if optimizer in ("adamw_torch", "adamw_torch_fused"):
        return 2 * trainable * parameter_bytes
    if optimizer == "paged_adamw_32bit":
        return 2 * trainable * 4
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2 * trainable  # plus one fp32 scale per 256 values, under 2%
    if optimizer == "adafactor":
        return trainable // 2  # factored second moments: rows + columns per matrix (rough)
    return 0  # sgd without momentum


# ------------------------------------------------------------------ activations


def _layer_activation_bytes(shape: ModelShape, act: int, *, weight_grads: bool) -> float:
    """Bytes autograd keeps per token in one Llama-style decoder layer.

    Always: each RMSNorm's fp32 input; attention's query, (repeated) keys and values and its
    output; the MLP's gate output (for SiLU), SiLU output and up output (for the product).
    With the layer's weights training, also the linear layers' inputs and the norms'
    normalized values.
    """
    h, q, inter = shape.hidden_size, shape.q_size, shape.intermediate_size
    # With padding in the batch, transformers repeats keys/values to every head before SDPA.
    # A gated MLP keeps gate output, its activation and up output; an ungated one two tensors,
    # or four with GPT-2's gelu_new (tanh approximation in separate torch ops, each keeping one).
    kept_per_unit = 3 if shape.gated_mlp else (4 if shape.layout == "gpt2" else 2)
    mlp = kept_per_unit * inter * shape.active_experts + 3 * shape.shared_expert_size
    kept = 2 * 4 * h + act * (q + 2 * q + q) + act * mlp
    if weight_grads:
        kept += 2 * act * h  # norm weights' inputs
        kept += 2 * act * h + act * inter  # inputs of q/k/v, gate/up and down projections
    return kept


def activation_bytes(
    shape: ModelShape,
    plan: MemoryPlan,
    *,
    batch_size: int,
    max_length: int,
    act: int,
    residual: int,
    gradient_checkpointing: bool,
    attention: str = "sdpa",
) -> int:
    tokens = batch_size * (max_length + plan.extra_tokens)
    frozen_layer = _layer_activation_bytes(shape, act, weight_grads=False) + plan.per_token_layer
    trained_layer = _layer_activation_bytes(shape, act, weight_grads=True) + plan.per_token_layer
    plain = plan.layers_with_grad - plan.weight_grad_layers
    if attention == "eager":
        scores = batch_size * shape.num_heads * (max_length + plan.extra_tokens) ** 2 * (4 + act)
    else:
        scores = 0
    if gradient_checkpointing and plan.layers_with_grad:
        # One hidden state per layer, and one layer's full set while it is recomputed.
        per_layer = tokens * residual * plan.layers_with_grad
        layers = per_layer + tokens * max(
            trained_layer if plan.weight_grad_layers else frozen_layer, 0
        )
        layers += scores
    else:
        layers = tokens * (plain * frozen_layer + plan.weight_grad_layers * trained_layer)
        layers += scores * plan.layers_with_grad
    # Logits in the compute dtype, the fp32 log-softmax the loss keeps, and at the start of
    # backward one fp32 gradient of the same size.
    logits = tokens * shape.vocab_size * (act + 8)
    return int(layers + logits)


# ------------------------------------------------------------------ the estimate


def estimate_memory(
    model: Any,
    method: Any = "lora",
    *,
    batch_size: int = 1,
    max_length: int = 512,
    gradient_checkpointing: bool = False,
    optimizer: str = "adamw_torch",
    precision: str = "auto",
    device: str = "cuda",
    attention: str = "sdpa",
) -> MemoryEstimate:
    """Estimate the memory of training `model` with `method`.

    `model`: a transformers config, a config.json dict, a model folder, a `ModelShape` or a
    `ModelInfo`. `method`: method settings (`studio.config`) or a method name for its
    defaults. `precision` follows the run config (auto: bf16 on a GPU, fp32 on CPU); `device`
    is where it would train ("cuda" or "cpu").
    """
    # On first use: the registry reads the config's method settings (pydantic).
    from studio.methods.registry import get_method

    shape = ModelShape.from_model(model)
    settings = _settings(method)
    on_gpu = device != "cpu"
    if precision == "auto":
        precision = "bf16" if on_gpu else "fp32"
    half = precision in ("bf16", "fp16")
    act = 2 if half else 4
    weight_bytes = 2 if half and on_gpu else 4  # CPU keeps fp32 weights, autocasts compute
    # Each method states what it trains and keeps (its module's `memory_plan`).
    plan = (
        get_method(settings.name)
        .implementation()
        .memory_plan(shape, settings, activation_bytes=act, weight_bytes=weight_bytes)
    )
    total = shape.num_parameters
    notes = list(plan.notes)

    if plan.base_weight_bytes is not None:  # loaded its own way (QLoRA's 4-bit layers)
        weights = plan.base_weight_bytes
    else:
        weights = total * weight_bytes
        if plan.trains_base:  # full / freeze train float32 master weights (methods/precision)
            weights += plan.trainable * (TRAINED_BYTES - weight_bytes)
    weights += plan.adapter * TRAINED_BYTES

    grad_bytes = TRAINED_BYTES  # every trained weight is float32
    gradients = plan.trainable * grad_bytes
    optimizer_bytes = optimizer_state_bytes(optimizer, plan.trainable, grad_bytes)
    activations = activation_bytes(
        shape,
        plan,
        batch_size=batch_size,
        max_length=max_length,
        act=act,
        residual=weight_bytes,
        gradient_checkpointing=gradient_checkpointing,
        attention=attention,
    )
    if shape.approximate:
        notes.append("model shape approximated from its parameter count")
    if optimizer.startswith("paged_") and on_gpu:
        notes.append("paged optimizer: its state can spill to host memory under pressure")
    return MemoryEstimate(
        weights=int(weights),
        gradients=int(gradients),
        optimizer=int(optimizer_bytes),
        activations=int(activations),
        overhead=CUDA_CONTEXT_BYTES if on_gpu else 0,
        total_parameters=total + plan.adapter,
        trainable_parameters=plan.trainable,
        notes=tuple(notes),
    )


def estimate_run(
    config: Any, model: Any, *, device: str = "cuda", method: Any = None
) -> MemoryEstimate:
    """`estimate_memory` with the method and hyperparameters of a `RunConfig`; `method`
    (method settings) estimates another method with the same hyperparameters."""
    training = config.training
    return estimate_memory(
        model,
        config.method if method is None else method,
        batch_size=training.batch_size,
        max_length=config.data.max_length,
        gradient_checkpointing=training.gradient_checkpointing,
        optimizer=training.optimizer,
        precision=training.precision,
        device=device,
    )

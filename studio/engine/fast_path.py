"""The fast path: which speed switches a run uses, and why.

Every switch is a maintained library feature, never home-made kernels:

- attention: FlashAttention 2 where flash-attn is installed on a GPU, else PyTorch SDPA;
- padding-free batches: a batch's examples end to end with restarting `position_ids`
  (transformers turns them into variable-length attention), as `packing.py` does for packs;
- Liger kernels (`liger-kernel`, applied by the transformers Trainer's `use_liger_kernel`):
  RMSNorm, RoPE, SwiGLU and the cross-entropy fused with the output layer;
- fused AdamW (`adamw_torch_fused`);
- gradient checkpointing, optionally with the saved activations offloaded to host memory
  (transformers' `activation_checkpointing_kwargs={"offload": True}`);
- `torch.compile` through the Trainer's `torch_compile`;
- bf16, decided by `studio.models.loading.plan_device`.

The decisions are pure functions of the config, the device plan, what the machine offers
(`Machine`, from `probe_machine`) and what the loaded model is (`ModelFacts`, from
`inspect_model`), so they are tested on any machine. Each switch is reported as one log line
saying what was used and why not; a switch set to "on" that cannot apply gives a warning and
the run goes on without it.

Known conflicts handled here:

- Liger's fused linear cross-entropy reads `lm_head.weight` directly: an output layer trained
  through an adapter (LoRA on lm_head, modules_to_save, new tokens' rows) or stored in 4 bits
  would silently get no update, so the fused loss is left off and the other kernels stay on;
- 4-bit bitsandbytes models: `prepare_model_for_kbit_training` leaves the output layer and norms
  in float32 next to half-precision activations, where the fused loss has had dtype conflicts
  (Liger-Kernel issue #235); the fused loss is left off, the layer kernels stay on;
- DPO / ORPO compute log-probabilities from the logits themselves (trl refuses the fused loss);
- padding-free batches need the model to honour restarting position ids, which `sft.py` checks
  with one small forward (`packing.check_isolation`) before it batches that way;
- Liger patches the model classes of the whole process: `patch_isolation.isolated_model_code`
  puts them back when a run ends, so a later run or chat model is built without them;
- Triton (Liger, torch.compile on CUDA) builds its driver module with a C compiler at the
  first kernel launch: without one both stay off with that reason instead of failing step 1;
- FlashAttention 2 and 3 are separate packages, each gated on its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.engine.packing import VIRTUAL_TOKEN_METHODS

if TYPE_CHECKING:
    from studio.config import RunConfig, TrainingSettings
    from studio.models.loading import DevicePlan

FLASH_ATTENTION = ("flash_attention_2", "flash_attention_3")
TOKEN_SEQUENCE_TYPES = ("sft", "pretrain")
LIGER_INSTALL = "pip install 'ftstudio[gpu]' (liger-kernel)"
TRITON_NEEDS_COMPILER = (
    "Triton builds its CUDA driver module with a C compiler at the first kernel launch and "
    "none was found: install gcc (apt-get install gcc) or set CC"
)


@dataclass(frozen=True)
class Machine:
    """What this machine offers the fast path."""

    cuda: bool
    device_name: str = "cpu"
    liger_version: str | None = None  # None: liger-kernel is not importable
    liger_problem: str | None = None  # why it is not, when it is installed but broken
    liger_model_types: frozenset[str] = frozenset()
    flash_attention: bool = False  # FlashAttention 2 (the flash-attn package) can run
    flash_attention_3: bool = False  # FlashAttention 3 (flash_attn_interface) can run
    fused_adamw_devices: frozenset[str] = frozenset({"cuda", "cpu"})
    # A C compiler ($CC, gcc or clang): torch.compile's CPU code needs one, and so does Triton
    # on CUDA (it builds its driver module at the first kernel launch: Liger, torch.compile).
    compiler: bool = True
    checkpoint_offload: bool = True  # transformers can offload checkpointed activations


@dataclass(frozen=True)
class ModelFacts:
    """What the model, with its method applied, is made of."""

    model_type: str
    quantized_4bit: bool = False
    head_wrapped: bool = False  # the output layer is an adapter wrapper or quantized
    attn_implementation: str = "sdpa"


@dataclass(frozen=True)
class Choice:
    """One switch: whether it is used, why (or why not), and the value it sets."""

    name: str
    enabled: bool
    reason: str = ""
    value: Any = None
    warn: bool = False  # asked for explicitly but cannot apply
    state: str | None = None  # shown instead of on / off (the attention kernel's name)

    @property
    def line(self) -> str:
        state = self.state or ("on" if self.enabled else "off")
        text = f"fast path: {self.name} {state}"
        return f"{text} ({self.reason})" if self.reason else text

    @property
    def level(self) -> str:
        return "warning" if self.warn else "info"


@dataclass(frozen=True)
class FastPath:
    """Every switch of one run."""

    attention: Choice
    padding_free: Choice
    liger: Choice
    fused_cross_entropy: Choice
    fused_optimizer: Choice
    checkpointing: Choice
    offloading: Choice
    compile: Choice
    bf16: Choice
    choices: tuple[Choice, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "choices",
            (
                self.bf16,
                self.attention,
                self.padding_free,
                self.liger,
                self.fused_cross_entropy,
                self.fused_optimizer,
                self.checkpointing,
                self.offloading,
                self.compile,
            ),
        )

    def log_lines(self) -> list[tuple[str, str]]:
        """(level, text) for each switch, in a fixed order."""
        return [(choice.level, choice.line) for choice in self.choices]

    def argument_values(self, checkpoint_key: str) -> dict[str, Any]:
        """TrainingArguments keys this plan sets; `checkpoint_key` is the version's name for
        gradient checkpointing (`activation_checkpointing`, or the older alias)."""
        values: dict[str, Any] = {
            checkpoint_key: self.checkpointing.enabled,
            "torch_compile": self.compile.enabled,
            "use_liger_kernel": self.liger.enabled,
        }
        if self.liger.enabled:
            values["liger_kernel_config"] = {
                "fused_linear_cross_entropy": self.fused_cross_entropy.enabled
            }
        if self.fused_optimizer.enabled:
            values["optim"] = self.fused_optimizer.value
        if self.offloading.enabled:
            values[f"{checkpoint_key}_kwargs"] = {"offload": True}
        return values


# ---------------------------------------------------------------- probing


def probe_machine() -> Machine:
    """What this machine offers; never raises for a missing or broken optional package."""
    import torch

    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    liger_version = liger_problem = None
    liger_types: frozenset[str] = frozenset()
    if importlib.util.find_spec("liger_kernel") is not None:
        try:
            liger_version = importlib.metadata.version("liger-kernel")
        except importlib.metadata.PackageNotFoundError:
            liger_version = "unknown"
        if cuda:
            try:
                from liger_kernel.transformers.monkey_patch import (
                    MODEL_TYPE_TO_APPLY_LIGER_FN,
                )

                liger_types = frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)
            except Exception as error:  # a broken install (triton missing, ...) is no crash
                liger_problem = f"liger-kernel {liger_version} cannot be imported: {error}"
                liger_version = None
    return Machine(
        cuda=cuda,
        device_name=name,
        liger_version=liger_version,
        liger_problem=liger_problem,
        liger_model_types=liger_types,
        flash_attention=cuda and _flash_attention_available("is_flash_attn_2_available"),
        flash_attention_3=cuda and _flash_attention_available("is_flash_attn_3_available"),
        fused_adamw_devices=_fused_adamw_devices(),
        compiler=find_c_compiler() is not None,
        checkpoint_offload=_checkpoint_offload_supported(),
    )


def _flash_attention_available(check_name: str) -> bool:
    # transformers' own checks: the package, a version it supports, and a usable GPU.
    import transformers.utils

    check = getattr(transformers.utils, check_name, None)
    return bool(check()) if check is not None else False


def find_c_compiler() -> str | None:
    """The C compiler Triton would build with: $CC, else gcc, else clang on PATH (Triton's own
    order in `triton.runtime.build`; a plain `cc` is not looked for there)."""
    chosen = os.environ.get("CC")
    if chosen:
        return shutil.which(chosen) or (chosen if os.path.isfile(chosen) else None)
    for program in ("gcc", "clang"):
        found = shutil.which(program)
        if found:
            return found
    return None


def _fused_adamw_devices() -> frozenset[str]:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return frozenset(_get_fused_kernels_supported_devices())
    except (ImportError, AttributeError):
        return frozenset({"cuda"})


def _checkpoint_offload_supported() -> bool:
    import inspect

    from transformers import PreTrainedModel

    enable = getattr(PreTrainedModel, "activation_checkpointing_enable", None)
    return enable is not None and "offload" in inspect.signature(enable).parameters


def inspect_model(model: Any) -> ModelFacts:
    """The facts about a loaded model (with its method applied) that the switches depend on."""
    import torch

    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    quantized = any(p.__class__.__name__ == "Params4bit" for p in model.parameters())
    return ModelFacts(
        model_type=str(getattr(config, "model_type", "") or ""),
        quantized_4bit=quantized,
        # A peft wrapper (LoRA, modules_to_save, trainable tokens) or a 4-bit layer is no
        # plain Linear: the fused loss would read a weight that is not what is trained.
        head_wrapped=head is None or type(head) is not torch.nn.Linear,
        attn_implementation=str(getattr(config, "_attn_implementation", None) or "sdpa"),
    )


# ---------------------------------------------------------------- decisions


def choose_attention(
    requested: str, plan: DevicePlan, machine: Machine, supported: frozenset[str] | None = None
) -> Choice:
    """The attention implementation to load the model with (decided before loading).

    `supported`: the kernels the architecture implements (`studio.models.attention`), None
    when unknown; a kernel it lacks is never chosen (Gemma2 has no SDPA path)."""
    choice = _requested_attention(requested, plan, machine, supported)
    if supported is None or choice.value in supported:
        return choice
    fallback = "sdpa" if "sdpa" in supported else "eager"
    reason = f"this architecture does not support {choice.value}"
    if requested == "auto":
        return _attention(fallback, reason)
    return _attention(fallback, f"{requested}: {reason}", warn=True)


def _requested_attention(
    requested: str, plan: DevicePlan, machine: Machine, supported: frozenset[str] | None
) -> Choice:
    half = plan.dtype_name in ("bfloat16", "float16")
    if requested in FLASH_ATTENTION:
        problem = None
        installed = (
            machine.flash_attention_3
            if requested == "flash_attention_3"
            else machine.flash_attention
        )
        if not machine.cuda:
            problem = "needs CUDA"
        elif not installed:
            package = (
                "flash_attn_interface (FlashAttention 3)"
                if requested == "flash_attention_3"
                else "flash-attn package"
            )
            problem = f"needs the {package}"
        elif not half:
            problem = f"needs bf16 or fp16 weights, not {plan.dtype_name}"
        if problem:
            return _attention("sdpa", f"{requested} {problem}", warn=True)
        return _attention(requested, "model.attn_implementation")
    if requested != "auto":
        return _attention(requested, "model.attn_implementation")
    flash_fits = supported is None or FLASH_ATTENTION[0] in supported
    if machine.cuda and machine.flash_attention and half and flash_fits:
        return _attention(FLASH_ATTENTION[0], "flash-attn is installed")
    return _attention("sdpa", "flash-attn is not installed" if machine.cuda else "CPU")


def _attention(kernel: str, reason: str, warn: bool = False) -> Choice:
    return Choice("attention", True, reason, kernel, warn, state=kernel)


def choose_checkpointing(training: TrainingSettings, machine: Machine) -> tuple[Choice, Choice]:
    """(gradient checkpointing, activation offloading); decided before the method is applied,
    because QLoRA's preparation of the model needs to know."""
    offload = False
    if not training.activation_offloading:
        offloading = Choice("activation offloading", False)
    elif not machine.cuda:
        offloading = Choice(
            "activation offloading",
            False,
            "needs CUDA: on CPU activations are in host memory already",
            warn=True,
        )
    elif not machine.checkpoint_offload:
        offloading = Choice(
            "activation offloading",
            False,
            "this transformers version cannot offload checkpointed activations",
            warn=True,
        )
    else:
        offload = True
        offloading = Choice(
            "activation offloading", True, "checkpointed activations in host memory"
        )
    if training.gradient_checkpointing:
        checkpointing = Choice("gradient checkpointing", True, "training.gradient_checkpointing")
    elif offload:
        checkpointing = Choice("gradient checkpointing", True, "needed by activation offloading")
    else:
        checkpointing = Choice("gradient checkpointing", False)
    return checkpointing, offloading


def decide_fast_path(
    config: RunConfig, plan: DevicePlan, machine: Machine, model: ModelFacts, attention: Choice
) -> FastPath:
    """Every switch for a run, from the config, the device plan, the machine and the model."""
    training = config.training
    checkpointing, offloading = choose_checkpointing(training, machine)
    liger = _liger(training.liger_kernels, machine, model)
    return FastPath(
        attention=attention,
        padding_free=_padding_free(config, model),
        liger=liger,
        fused_cross_entropy=_fused_cross_entropy(liger, config.training_type, model),
        fused_optimizer=_fused_optimizer(
            training.fused_optimizer, training.optimizer, plan.device, machine
        ),
        checkpointing=checkpointing,
        offloading=offloading,
        compile=_compile(training.torch_compile, machine),
        bf16=_bf16(plan),
    )


def _padding_free(config: RunConfig, model: ModelFacts) -> Choice:
    name = "padding-free batches"
    setting = config.training.padding_free
    demanded = setting == "on"
    if config.training.packing and config.training_type in TOKEN_SEQUENCE_TYPES:
        return Choice(name, True, "training.packing packs padding-free", "packing")
    if setting == "off":
        return Choice(name, False, "training.padding_free: off")
    if config.training_type not in TOKEN_SEQUENCE_TYPES:
        return Choice(name, False, "sft and pretrain only", warn=demanded)
    if config.method.name in VIRTUAL_TOKEN_METHODS:
        reason = f"{config.method.name} puts its virtual tokens before every sequence"
        return Choice(name, False, reason, warn=demanded)
    if config.training.batch_size == 1:
        return Choice(name, False, "batch_size 1 has no padding")
    if model.attn_implementation in FLASH_ATTENTION:
        return Choice(name, True, f"variable-length {model.attn_implementation}", "batch")
    if demanded:
        reason = f"{model.attn_implementation} attends through a block mask over the batch"
        return Choice(name, True, reason, "batch")
    return Choice(
        name,
        False,
        f"pays off with FlashAttention's variable-length kernels, not "
        f"{model.attn_implementation}; set training.padding_free: on to use it anyway",
    )


def _liger(setting: str, machine: Machine, model: ModelFacts) -> Choice:
    name = "liger kernels"
    demanded = setting == "on"
    if setting == "off":
        return Choice(name, False, "training.liger_kernels: off")
    if not machine.cuda:
        return Choice(name, False, "needs CUDA", warn=demanded)
    if machine.liger_version is None:
        reason = machine.liger_problem or f"liger-kernel is not installed: {LIGER_INSTALL}"
        return Choice(name, False, reason, warn=demanded)
    if model.model_type not in machine.liger_model_types:
        reason = (
            f"liger-kernel {machine.liger_version} has none for model type '{model.model_type}'"
        )
        return Choice(name, False, reason, warn=demanded)
    if not machine.compiler:
        return Choice(name, False, TRITON_NEEDS_COMPILER, warn=demanded)
    return Choice(name, True, f"liger-kernel {machine.liger_version}, {model.model_type}")


def _fused_cross_entropy(liger: Choice, training_type: str, model: ModelFacts) -> Choice:
    name = "fused linear cross-entropy"
    if not liger.enabled:
        return Choice(name, False, "comes with the liger kernels")
    if training_type not in TOKEN_SEQUENCE_TYPES:
        return Choice(name, False, f"{training_type} computes log-probabilities from the logits")
    if model.quantized_4bit:
        return Choice(
            name, False, "not verified with 4-bit bitsandbytes models; the other kernels are on"
        )
    if model.head_wrapped:
        return Choice(
            name,
            False,
            "the output layer is trained through an adapter or quantized, which the fused "
            "kernel would bypass",
        )
    return Choice(name, True, "no logits tensor in memory")


def _fused_optimizer(setting: str, optimizer: str, device: str, machine: Machine) -> Choice:
    name = "fused AdamW"
    demanded = setting == "on"
    if optimizer == "adamw_torch_fused":
        return Choice(name, True, "training.optimizer: adamw_torch_fused", "adamw_torch_fused")
    if setting == "off":
        return Choice(name, False, "training.fused_optimizer: off")
    if optimizer != "adamw_torch":
        return Choice(name, False, f"training.optimizer is {optimizer}", warn=demanded)
    if device not in machine.fused_adamw_devices:
        return Choice(name, False, f"torch has no fused AdamW on {device}", warn=demanded)
    return Choice(name, True, f"adamw_torch_fused on {device}", "adamw_torch_fused")


def _compile(requested: bool, machine: Machine) -> Choice:
    name = "torch.compile"
    if not requested:
        return Choice(name, False, "training.torch_compile: false")
    if not machine.compiler:
        reason = (
            TRITON_NEEDS_COMPILER if machine.cuda else "no C compiler for the CPU code it generates"
        )
        return Choice(name, False, reason, warn=True)
    return Choice(name, True, "first step compiles")


def _bf16(plan: DevicePlan) -> Choice:
    if plan.bf16:
        return Choice("bf16", True, f"on {plan.device}, weights {plan.dtype_name}")
    if plan.fp16:
        return Choice("bf16", False, "this GPU has no bf16: fp16 mixed precision")
    return Choice("bf16", False, f"{plan.device}: {plan.dtype_name}")

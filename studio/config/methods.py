"""Settings of every fine-tuning method, one pydantic model each, selected by `name`.

Pure data (no torch): the run config, the TUI form and the CLI read these; the code that
applies a method to a model lives in `studio.methods`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MethodName = Literal[
    "freeze",
    "prompt_tuning",
    "p_tuning",
    "prefix_tuning",
    "bottleneck",
    "lora",
    "qlora",
    "ia3",
    "full",
]
METHOD_NAMES: tuple[str, ...] = MethodName.__args__  # type: ignore[attr-defined]
DEFAULT_METHOD = "lora"  # what a config without `method:` trains

ALL_TYPES = ("sft", "dpo", "orpo", "pretrain", "kto")
# Virtual-token methods have no sensible reference model for preference training in trl.
PROMPT_TYPES = ("sft", "pretrain")
METHOD_TRAINING_TYPES: dict[str, tuple[str, ...]] = {
    "freeze": ALL_TYPES,
    "prompt_tuning": PROMPT_TYPES,
    "p_tuning": PROMPT_TYPES,
    "prefix_tuning": PROMPT_TYPES,
    "bottleneck": ALL_TYPES,
    "lora": ALL_TYPES,
    "qlora": ALL_TYPES,
    "ia3": ALL_TYPES,
    "full": ALL_TYPES,
}


class _Method(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FreezeSettings(_Method):
    """Train only chosen layers; every other weight stays frozen."""

    name: Literal["freeze"] = "freeze"
    trainable_layers: int = Field(
        2, ge=0, le=1000, description="Train the last N transformer layers."
    )
    trainable_patterns: list[str] = Field(
        default_factory=list,
        description="Also train parameters whose name contains one of these, e.g. "
        "'layers.23.' or 'lm_head'.",
    )


class PromptTuningSettings(_Method):
    """Learn a few virtual token embeddings prepended to every input."""

    name: Literal["prompt_tuning"] = "prompt_tuning"
    num_virtual_tokens: int = Field(20, ge=1, le=1024, description="Number of virtual tokens.")
    init_text: str | None = Field(
        None,
        description="Start the virtual tokens from the embedding of this text (random when empty).",
    )


class PTuningSettings(_Method):
    """P-tuning v1: virtual tokens produced by a small prompt encoder."""

    name: Literal["p_tuning"] = "p_tuning"
    num_virtual_tokens: int = Field(20, ge=1, le=1024, description="Number of virtual tokens.")
    encoder_type: Literal["mlp", "lstm"] = Field("mlp", description="Prompt encoder network.")
    encoder_hidden_size: int = Field(
        128, ge=8, le=16384, description="Hidden size of the prompt encoder."
    )


class PrefixTuningSettings(_Method):
    """P-tuning v2 / prefix tuning: learned key/value vectors at every layer."""

    name: Literal["prefix_tuning"] = "prefix_tuning"
    num_virtual_tokens: int = Field(
        20, ge=1, le=1024, description="Number of virtual key/value positions per layer."
    )
    projection: bool = Field(
        False,
        description="Produce the prefix through a reparameterisation MLP (more stable "
        "training, more parameters while training).",
    )
    encoder_hidden_size: int = Field(
        128, ge=8, le=16384, description="Hidden size of the reparameterisation MLP."
    )


class BottleneckSettings(_Method):
    """Bottleneck adapters: down-project, non-linearity, up-project, with a skip connection."""

    name: Literal["bottleneck"] = "bottleneck"
    bottleneck_size: int = Field(
        64, ge=1, le=16384, description="Width of the adapter's bottleneck."
    )
    placement: Literal["sequential", "parallel"] = Field(
        "sequential",
        description="sequential (Houlsby): after the sublayer; parallel: beside it.",
    )
    location: Literal["attention", "mlp", "both"] = Field(
        "both", description="Which sublayers get an adapter."
    )
    scaling: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="Multiplier on the adapter's output (scaled-parallel uses e.g. 4.0).",
    )
    activation: Literal["relu", "gelu", "silu", "tanh"] = Field(
        "relu", description="Non-linearity between the projections."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside the adapter.")


TargetModules = Literal["all-linear"] | list[str]


class LoraSettings(_Method):
    """LoRA: learn a low-rank update A x B beside chosen weight matrices."""

    name: Literal["lora"] = "lora"
    rank: int = Field(
        16,
        ge=1,
        le=4096,
        description="Rank r of the update: more capacity and memory as it grows. 8-64 is usual.",
    )
    alpha: float | None = Field(
        None,
        gt=0.0,
        le=65536.0,
        description="Scale of the update (alpha / rank). Empty: 2 x rank.",
    )
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: TargetModules = Field(
        "all-linear",
        description="Which layers get LoRA: 'all-linear', or names such as [q_proj, v_proj].",
    )
    use_rslora: bool = Field(
        False, description="rsLoRA: scale by alpha / sqrt(rank); stabler at high ranks."
    )
    use_dora: bool = Field(
        False,
        description="DoRA: learn magnitude and direction separately; closer to full "
        "fine-tune, slower.",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_comma_targets(cls, data: Any) -> Any:
        # `--set method.target_modules=q_proj,v_proj` arrives as one string.
        if isinstance(data, dict):
            targets = data.get("target_modules")
            if isinstance(targets, str) and targets != "all-linear":
                data = {**data, "target_modules": [t.strip() for t in targets.split(",") if t]}
        return data

    @property
    def effective_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class QLoraSettings(LoraSettings):
    """QLoRA: LoRA on a base model quantised to 4 bits (NF4) to save memory."""

    name: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", description="4-bit data type; NF4 suits normally distributed weights."
    )
    double_quant: bool = Field(
        True, description="Quantise the quantisation constants too (saves ~0.4 bit/param)."
    )
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Dtype the 4-bit weights are computed in."
    )


class IA3Settings(_Method):
    """IA3: learn vectors that rescale keys, values and feed-forward activations."""

    name: Literal["ia3"] = "ia3"
    target_modules: list[str] | None = Field(
        None, description="Layers to rescale (empty: the library's default for the model)."
    )
    feedforward_modules: list[str] | None = Field(
        None, description="Which of the targets are feed-forward layers."
    )


class FullSettings(_Method):
    """Full fine-tune: train every weight. Needs about 4x the model's size in memory or more."""

    name: Literal["full"] = "full"


MethodSettings = Annotated[
    FreezeSettings
    | PromptTuningSettings
    | PTuningSettings
    | PrefixTuningSettings
    | BottleneckSettings
    | LoraSettings
    | QLoraSettings
    | IA3Settings
    | FullSettings,
    Field(discriminator="name"),
]

METHOD_SETTINGS: dict[str, type[_Method]] = {
    "freeze": FreezeSettings,
    "prompt_tuning": PromptTuningSettings,
    "p_tuning": PTuningSettings,
    "prefix_tuning": PrefixTuningSettings,
    "bottleneck": BottleneckSettings,
    "lora": LoraSettings,
    "qlora": QLoraSettings,
    "ia3": IA3Settings,
    "full": FullSettings,
}


def method_defaults(name: str) -> Any:
    """The settings of method `name` with every default."""
    return METHOD_SETTINGS[name]()

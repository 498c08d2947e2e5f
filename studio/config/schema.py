"""The run config's schema: one pydantic model that is the single source of truth for a run.

The YAML file, the `--set key=value` overrides of the CLI and the TUI's config form are all
read from these models: descriptions, defaults, enums and bounds live here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from studio.config.methods import (
    DEFAULT_METHOD,
    METHOD_TRAINING_TYPES,
    MethodSettings,
    method_defaults,
)

TrainingType = Literal["sft", "dpo", "orpo", "pretrain", "kto"]
DataFormat = Literal["auto", "alpaca", "sharegpt", "messages", "preference", "kto", "text"]
# Named chat templates for base models (studio/models/chat_templates.py holds them).
ChatTemplatePreset = Literal[
    "auto", "none", "chatml", "qwen", "llama3", "mistral", "gemma", "phi3", "alpaca"
]
Scheduler = Literal[
    "linear", "cosine", "constant", "constant_with_warmup", "inverse_sqrt", "polynomial"
]
Optimizer = Literal[
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "adafactor",
    "sgd",
]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def _switch_word(value: Any) -> Any:
    # YAML 1.1 reads a bare `on` / `off` as true / false; both mean the switch's word.
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


# A speed switch: "auto" uses it where it applies and is safe, "on" asks for it (a warning says
# why when it cannot apply), "off" never uses it. See studio/engine/fast_path.py.
Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch_word)]


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(Section):
    """Which base model to fine-tune and how to load it."""

    source: str = Field(
        "tiny-demo",
        min_length=1,
        description="Base model: 'tiny-demo' (built-in, no download), a local folder, "
        "or a Hugging Face hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'.",
    )
    revision: str | None = Field(
        None, description="Hub branch, tag or commit to load; empty for the default branch."
    )
    trust_remote_code: bool = Field(
        False,
        description="Run Python code shipped with the model. Only turn on for models you trust.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weight dtype when loading. 'auto': bfloat16 on a GPU that supports it, "
        "float32 on CPU.",
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel. 'auto' picks FlashAttention 2 on a GPU where the "
        "flash-attn package is installed, else SDPA (fast, built into torch), among what the "
        "architecture supports (eager for Gemma2).",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template to use instead of the tokenizer's own, for base "
        "models that ship none.",
    )
    chat_template_preset: ChatTemplatePreset = Field(
        "auto",
        description="A named chat template for base models: chatml, qwen (chatml with tool "
        "calls), llama3, mistral, gemma, phi3 or alpaca (plain text, no special tokens). "
        "'auto' keeps the tokenizer's own and, when it has none, picks the preset whose "
        "markers are in the vocabulary (else alpaca) and logs why; 'none' never adds one. "
        "model.chat_template wins over both. The template is saved with the adapter.",
    )
    extra_tokens_file: str | None = Field(
        None,
        description="Text file with one new token per line (domain terms, markers) to add to "
        "the vocabulary; the embedding and output rows of the new tokens are trained with the "
        "method and saved with the adapter. sft and pretrain only.",
    )


def _mixed_dataset_shorthand(value: Any) -> Any:
    # `PATH` or `PATH:WEIGHT` in a list (the TUI form and --set) means {path, weight}.
    if isinstance(value, str):
        path, sep, weight = value.rpartition(":")
        try:
            return {"path": path, "weight": float(weight)} if sep else {"path": value}
        except ValueError:
            return {"path": value}
    return value


class MixedDataset(Section):
    """One more dataset in the training mix, with its own format and weight."""

    path: str = Field(..., min_length=1, description="Dataset file, folder or hub name.")
    format: DataFormat = Field("auto", description="Record format, as data.format.")
    weight: float = Field(
        1.0, gt=0.0, le=1000.0, description="Share of the mix relative to the others' weights."
    )
    split: str = Field("train", min_length=1, description="Split of a hub dataset or folder.")


class DataSettings(Section):
    """The training data and how it is cleaned and split."""

    path: str = Field(
        "sample_data/alpaca_en.jsonl",
        min_length=1,
        description="Dataset file (.json, .jsonl, .csv, .parquet, .txt), a dataset folder "
        "(shards, or written by datasets' save_to_disk) or a Hugging Face hub dataset name. "
        "Relative paths are read from the folder you run ftstudio in.",
    )
    format: DataFormat = Field(
        "auto",
        description="Record format. 'auto' detects it from the fields: alpaca "
        "(instruction/input/output), sharegpt (conversations), messages (role/content), "
        "preference (prompt/chosen/rejected) or text.",
    )
    split: str = Field(
        "train", min_length=1, description="Split to read from a hub dataset or dataset folder."
    )
    eval_fraction: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Share of records held out to measure eval loss (0 = no eval split).",
    )
    eval_path: str | None = Field(
        None, description="A separate eval file; used instead of eval_fraction when set."
    )
    max_length: int = Field(
        512,
        ge=16,
        le=262144,
        description="Longest tokenized example in tokens; longer ones are truncated and "
        "reported. Memory grows with it.",
    )
    min_chars: int = Field(
        1,
        ge=0,
        le=100000,
        description="Records whose text is shorter than this many characters are dropped "
        "as too short.",
    )
    deduplicate: bool = Field(True, description="Drop exact duplicate records.")
    on_bad_record: Literal["skip", "stop"] = Field(
        "skip",
        description="What to do with malformed records: 'skip' drops and reports them, "
        "'stop' refuses to train until the file is fixed.",
    )
    system_prompt: str | None = Field(
        None, description="System prompt added to conversations that have none."
    )
    replay_path: str | None = Field(
        None,
        description="A second, general dataset mixed into training so the model does not "
        "forget what it knew (replay). Same formats as path; it must suit the training type.",
    )
    weight: float = Field(
        1.0,
        gt=0.0,
        le=1000.0,
        description="Weight of data.path in the mix when data.mix lists more datasets.",
    )
    mix: list[Annotated[MixedDataset, BeforeValidator(_mixed_dataset_shorthand)]] = Field(
        default_factory=list,
        description="More datasets trained together with data.path, each with its own format "
        "and weight ('PATH:WEIGHT' or {path, format, weight, split}). Each gets weight / sum "
        "of weights of the training set, drawn without repetition; the data report shows "
        "the shares.",
    )
    streaming: bool = Field(
        False,
        description="Stream a hub dataset instead of downloading it whole; reads only the "
        "first data.max_records records.",
    )
    max_records: int | None = Field(
        None,
        ge=1,
        description="Read at most this many records of each dataset (needed with streaming).",
    )
    replay_fraction: float = Field(
        0.2,
        gt=0.0,
        le=0.9,
        description="Share of the training examples drawn from replay_path, e.g. 0.2 = one "
        "in five. Used only when replay_path is set.",
    )

    @field_serializer("mix")
    def _mix_shorthand(self, mix: list[MixedDataset]) -> list[Any]:
        # 'PATH:WEIGHT' where that says it all, so the TUI form's text field round-trips.
        return [
            f"{entry.path}:{entry.weight:g}"
            if entry.format == "auto" and entry.split == "train"
            else entry.model_dump()
            for entry in mix
        ]


class PreferenceSettings(Section):
    """Settings for preference training (DPO, ORPO and KTO)."""

    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="How strongly training keeps to the reference model (DPO) or weighs the "
        "odds-ratio term (ORPO). Typical: 0.1.",
    )
    max_prompt_length: int = Field(
        256, ge=8, le=131072, description="Longest prompt in tokens; longer are truncated."
    )
    desirable_weight: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="KTO: weight of the loss on answers labelled good; raise it when they are "
        "fewer than the bad ones.",
    )
    undesirable_weight: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="KTO: weight of the loss on answers labelled bad.",
    )


class TrainingSettings(Section):
    """Hyperparameters of the optimisation."""

    epochs: float = Field(
        3.0,
        gt=0.0,
        le=1000.0,
        description="Passes over the data. More epochs fit the data closer but can overfit; "
        "with a high learning rate use fewer.",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop after this many optimizer steps; overrides epochs when set.",
    )
    learning_rate: float = Field(
        3e-4,
        ge=1e-6,
        le=1e-2,
        description="Step size of the optimizer. 3e-4 suits LoRA; full fine-tunes use "
        "1e-5..5e-5. Too high diverges, too low learns nothing in the given epochs.",
    )
    scheduler: Scheduler = Field(
        "cosine", description="How the learning rate changes over the run after warm-up."
    )
    warmup_ratio: float = Field(
        0.03, ge=0.0, le=0.5, description="Share of steps spent ramping the learning rate up."
    )
    warmup_steps: int = Field(
        0, ge=0, description="Warm-up in steps; overrides warmup_ratio when above 0."
    )
    batch_size: int = Field(
        4, ge=1, le=4096, description="Examples per step on each device. Memory grows with it."
    )
    gradient_accumulation: int = Field(
        1,
        ge=1,
        le=4096,
        description="Steps whose gradients are summed before each update: effective batch "
        "= batch_size x gradient_accumulation, at the memory of batch_size.",
    )
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="L2 penalty on weights.")
    max_grad_norm: float = Field(
        1.0, ge=0.0, le=1000.0, description="Clip gradients to this norm (0 = no clipping)."
    )
    optimizer: Optimizer = Field(
        "adamw_torch",
        description="Optimizer. adamw_8bit keeps its state in 8 bits (about 4x less memory); "
        "paged_* variants move state to host memory when the GPU runs short.",
    )
    precision: Precision = Field(
        "auto",
        description="Compute precision. 'auto': bf16 on GPUs that support it, fp16 on older "
        "GPUs, fp32 on CPU.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass: much less memory, about 30% "
        "slower.",
    )
    packing: bool = Field(
        False,
        description="Pack several short examples into one sequence to waste no compute on padding.",
    )
    padding_free: Switch = Field(
        "auto",
        description="SFT / pretrain: lay each batch's examples end to end as one sequence with "
        "no padding tokens (no attention across examples). 'auto': on with FlashAttention, "
        "whose variable-length kernels make it pay.",
    )
    liger_kernels: Switch = Field(
        "auto",
        description="Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU, and cross-entropy "
        "fused with the output layer): faster steps, much less memory. Needs a CUDA GPU and "
        "liger-kernel (pip install 'ftstudio[gpu]'). 'auto': on where they apply.",
    )
    fused_optimizer: Switch = Field(
        "auto",
        description="Run AdamW as one fused kernel over all parameters (adamw_torch becomes "
        "adamw_torch_fused) where torch supports it on the device. Same maths, faster.",
    )
    activation_offloading: bool = Field(
        False,
        description="Gradient checkpointing with the saved activations in host memory instead "
        "of GPU memory: for long sequences that do not fit otherwise; slower. CUDA only; "
        "turns gradient_checkpointing on.",
    )
    torch_compile: bool = Field(
        False,
        description="Compile the model with torch.compile: faster steps after a first step "
        "that takes minutes to compile; pays off on long runs with few distinct lengths.",
    )
    assistant_only_loss: bool = Field(
        True,
        description="SFT: learn only from the assistant's answers, not from prompts.",
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Random seed for init and data order.")
    logging_steps: int = Field(5, ge=1, description="Record training loss every N steps.")
    eval_steps: int | None = Field(
        None, ge=1, description="Measure eval loss every N steps (default: 4 times a run)."
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Stop when eval loss has not improved for this many evaluations in a row "
        "(empty: never stop early). Needs an eval split.",
    )
    save_steps: int | None = Field(
        None,
        ge=1,
        description="Write a checkpoint every N steps, to resume from after a crash (empty: "
        "about every fifth of the run, 25 to 1000 steps apart; runs under 50 steps save only "
        "at the end and on stop).",
    )
    save_total_limit: int = Field(
        2, ge=1, le=1000, description="Keep only the newest N checkpoints."
    )
    sample_steps: int | None = Field(
        None,
        ge=0,
        description="Answer the sample prompts every N steps, to watch the model learn on "
        "the Train screen and in samples.jsonl (empty: 4 times a run; 0: never).",
    )
    sample_prompts: list[str] = Field(
        default_factory=list,
        description="Prompts the model answers during training (empty: the first two "
        "prompts of the eval set, else of the training data).",
    )


class OutputSettings(Section):
    """Where the run is written."""

    runs_dir: str = Field("runs", min_length=1, description="Folder that holds all runs.")
    run_name: str | None = Field(
        None,
        description="Name of this run's folder; default: model, method and a timestamp.",
    )
    share_with_group: bool = Field(
        False,
        description="Let your group read the run folder (0750 / 0640); by default a run is "
        "private to you (0700 / 0600). Only you can control a run either way.",
    )

    @field_validator("run_name")
    @classmethod
    def _safe_run_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError(
                "use letters, digits, '.', '_' and '-' only (at most 100), starting with a "
                "letter or digit"
            )
        return value


def _device_list_text(value: Any) -> Any:
    # YAML may say `gpus: 3` or `gpus: [0, 1]`; the field keeps one text form, "0,1".
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item).strip() for item in value)
    return value.strip() if isinstance(value, str) else value


class DeviceSettings(Section):
    """Which devices train the run: one GPU in-process, several through torchrun."""

    gpus: Annotated[str, BeforeValidator(_device_list_text)] = Field(
        "auto",
        description="GPUs to train on: auto (the freest GPUs that fit the run) or NVML indices "
        "as nvidia-smi shows them, e.g. 0 or 0,1,3. Several GPUs train as one torchrun group.",
    )
    gpu_count: int = Field(
        1, ge=1, le=64, description="How many GPUs `auto` picks (with gpus: auto)."
    )
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="How several processes share the work: ddp copies the model to each "
        "(adapter methods), fsdp shards weights, gradients and optimizer state (full "
        "fine-tunes, models larger than one GPU); auto picks by method.",
    )
    cpu_processes: int = Field(
        1,
        ge=1,
        le=16,
        description="On a machine without a GPU: more than 1 trains as a torchrun group of that "
        "many CPU processes (gloo), to try the multi-process path anywhere.",
    )

    @field_validator("gpus")
    @classmethod
    def _gpu_indices(cls, value: str) -> str:
        if value == "auto":
            return value
        parts = [part.strip() for part in value.split(",")]
        if not parts or not all(part.isdigit() for part in parts):
            raise ValueError("use auto or GPU indices separated by commas, e.g. 0 or 0,1")
        if len(set(parts)) != len(parts):
            raise ValueError(f"a GPU is listed twice in '{value}'")
        return ",".join(str(int(part)) for part in parts)

    @property
    def indices(self) -> tuple[int, ...] | None:
        """The GPU indices asked for, or None for auto."""
        if self.gpus == "auto":
            return None
        return tuple(int(part) for part in self.gpus.split(","))


class RunConfig(Section):
    """Everything about one fine-tuning run."""

    model: ModelSettings = Field(default_factory=ModelSettings, description="Base model.")
    method: MethodSettings = Field(
        default_factory=lambda: method_defaults(DEFAULT_METHOD), description="Fine-tuning method."
    )
    training_type: TrainingType = Field(
        "sft",
        description="sft: learn to answer like the examples; dpo / orpo: learn to prefer "
        "chosen over rejected answers; kto: learn from answers labelled good or bad; "
        "pretrain: continue pre-training on raw text.",
    )
    data: DataSettings = Field(default_factory=DataSettings, description="Training data.")
    training: TrainingSettings = Field(
        default_factory=TrainingSettings, description="Hyperparameters."
    )
    preference: PreferenceSettings = Field(
        default_factory=PreferenceSettings, description="DPO / ORPO settings."
    )
    output: OutputSettings = Field(default_factory=OutputSettings, description="Output.")
    devices: DeviceSettings = Field(
        default_factory=DeviceSettings, description="GPUs and processes that train the run."
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        "none", description="Also send metrics to TensorBoard or Weights & Biases."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _method_by_name(cls, value: Any) -> Any:
        # `method: qlora` is shorthand for the method with all its defaults.
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _method_fits_training_type(self) -> RunConfig:
        allowed = METHOD_TRAINING_TYPES[self.method.name]
        if self.training_type not in allowed:
            raise ValueError(
                f"method '{self.method.name}' does not support training_type "
                f"'{self.training_type}' (it supports: {', '.join(allowed)})"
            )
        return self

    @model_validator(mode="after")
    def _kto_needs_pairs_in_a_batch(self) -> RunConfig:
        # KTO estimates its KL term from the other answers of the same batch.
        if self.training_type == "kto" and self.training.batch_size < 2:
            raise ValueError(
                "training_type kto needs training.batch_size of 2 or more (its KL term "
                "compares each answer with the others in its batch); use "
                "gradient_accumulation to save memory instead"
            )
        if self.data.streaming and self.data.max_records is None:
            raise ValueError(
                "data.streaming reads a hub dataset as it goes, so it needs data.max_records "
                "(how many records to read)"
            )
        return self


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain data, in field order, for YAML."""
    return config.model_dump(mode="json")

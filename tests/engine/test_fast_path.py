"""The fast path's decisions on every kind of machine, and its wiring into a CPU run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from studio.config import config_from_dict, load_config
from studio.engine.fast_path import (
    Choice,
    Machine,
    ModelFacts,
    choose_attention,
    choose_checkpointing,
    decide_fast_path,
    inspect_model,
)
from studio.models.loading import DevicePlan

# The CPU runs here expect CPU decisions ("liger kernels off (needs CUDA)", fused AdamW on cpu).
pytestmark = pytest.mark.usefixtures("pin_cpu")

CPU = Machine(cuda=False)
GPU = Machine(
    cuda=True,
    device_name="NVIDIA H100 80GB HBM3",
    liger_version="0.8.5",
    liger_model_types=frozenset({"llama", "qwen2", "mistral"}),
    flash_attention=True,
)
GPU_BARE = replace(GPU, liger_version=None, liger_model_types=frozenset(), flash_attention=False)
CPU_PLAN = DevicePlan(device="cpu", dtype_name="float32", bf16=False, fp16=False)
GPU_PLAN = DevicePlan(device="cuda", dtype_name="bfloat16", bf16=True, fp16=False)
LLAMA = ModelFacts(model_type="llama", attn_implementation="flash_attention_2")
LLAMA_SDPA = ModelFacts(model_type="llama", attn_implementation="sdpa")


def config(training: dict | None = None, **sections):
    return config_from_dict({"training": training or {}, **sections})


def decide(machine=GPU, plan=GPU_PLAN, facts=LLAMA, **kwargs):
    run = config(**kwargs)
    attention = choose_attention(run.model.attn_implementation, plan, machine)
    return decide_fast_path(run, plan, machine, facts, attention)


# ---------------------------------------------------------------- Liger kernels


def test_liger_is_off_on_cpu_with_a_reason_and_no_warning_by_default() -> None:
    fast = decide(CPU, CPU_PLAN, LLAMA_SDPA)
    assert not fast.liger.enabled and fast.liger.reason == "needs CUDA"
    assert fast.liger.line == "fast path: liger kernels off (needs CUDA)"
    assert not fast.liger.warn
    assert not fast.fused_cross_entropy.enabled


def test_liger_demanded_where_it_cannot_apply_warns_and_the_run_goes_on() -> None:
    fast = decide(CPU, CPU_PLAN, LLAMA_SDPA, training={"liger_kernels": "on"})
    assert not fast.liger.enabled and fast.liger.warn and fast.liger.level == "warning"
    values = fast.argument_values("activation_checkpointing")
    assert values["use_liger_kernel"] is False and "liger_kernel_config" not in values


def test_liger_not_installed_says_how_to_install_it() -> None:
    fast = decide(GPU_BARE, facts=LLAMA_SDPA)
    assert not fast.liger.enabled
    assert "pip install 'ftstudio[gpu]'" in fast.liger.reason


def test_a_broken_liger_install_is_reported_not_raised() -> None:
    broken = replace(GPU_BARE, liger_problem="liger-kernel 0.8.5 cannot be imported: no triton")
    assert "no triton" in decide(broken).liger.reason


def test_liger_with_its_fused_loss_on_a_supported_gpu_model() -> None:
    fast = decide()
    assert fast.liger.enabled and fast.fused_cross_entropy.enabled
    values = fast.argument_values("activation_checkpointing")
    assert values["use_liger_kernel"] is True
    assert values["liger_kernel_config"] == {"fused_linear_cross_entropy": True}


def test_liger_has_no_kernels_for_an_unknown_model_type() -> None:
    fast = decide(facts=replace(LLAMA, model_type="gpt_neox"))
    assert not fast.liger.enabled and "gpt_neox" in fast.liger.reason


def test_liger_off_switch_wins() -> None:
    assert not decide(training={"liger_kernels": "off"}).liger.enabled


def test_fused_loss_is_off_when_lm_head_is_trained_through_an_adapter() -> None:
    # LoRA on lm_head: Liger's fused loss reads lm_head.weight and would bypass the adapter.
    fast = decide(facts=replace(LLAMA, head_wrapped=True))
    assert fast.liger.enabled and not fast.fused_cross_entropy.enabled
    assert "adapter" in fast.fused_cross_entropy.reason
    config_values = fast.argument_values("activation_checkpointing")["liger_kernel_config"]
    assert config_values == {"fused_linear_cross_entropy": False}


def test_fused_loss_is_off_on_4bit_models_but_the_layer_kernels_stay() -> None:
    fast = decide(facts=replace(LLAMA, quantized_4bit=True, head_wrapped=False))
    assert fast.liger.enabled and not fast.fused_cross_entropy.enabled
    assert "4-bit" in fast.fused_cross_entropy.reason


@pytest.mark.parametrize("training_type", ["dpo", "orpo"])
def test_fused_loss_is_off_for_preference_training(training_type: str) -> None:
    fast = decide(training_type=training_type, data={"path": "sample_data/preference_en.jsonl"})
    assert fast.liger.enabled and not fast.fused_cross_entropy.enabled


# ---------------------------------------------------------------- attention and padding


def test_attention_auto_picks_flash_attention_only_where_it_can_run() -> None:
    assert choose_attention("auto", GPU_PLAN, GPU).value == "flash_attention_2"
    assert choose_attention("auto", GPU_PLAN, GPU_BARE).value == "sdpa"
    assert choose_attention("auto", CPU_PLAN, CPU).value == "sdpa"
    fp32 = replace(GPU_PLAN, dtype_name="float32", bf16=False)
    assert choose_attention("auto", fp32, GPU).value == "sdpa"
    assert choose_attention("eager", CPU_PLAN, CPU).value == "eager"


def test_flash_attention_asked_for_on_cpu_falls_back_to_sdpa_with_a_warning() -> None:
    choice = choose_attention("flash_attention_2", CPU_PLAN, CPU)
    assert choice.value == "sdpa" and choice.warn
    assert choice.line == "fast path: attention sdpa (flash_attention_2 needs CUDA)"


def test_padding_free_follows_flash_attention() -> None:
    assert decide(training={"batch_size": 4}).padding_free.value == "batch"
    off = decide(facts=LLAMA_SDPA, training={"batch_size": 4}).padding_free
    assert not off.enabled and not off.warn and "padding_free: on" in off.reason
    demanded = decide(facts=LLAMA_SDPA, training={"batch_size": 4, "padding_free": "on"})
    assert demanded.padding_free.enabled


def test_padding_free_does_not_apply_where_sequences_must_stay_apart() -> None:
    packed = decide(training={"packing": True}).padding_free
    assert packed.enabled and packed.value == "packing"
    single = decide(training={"batch_size": 1}).padding_free
    assert not single.enabled
    prompt = decide(method="prompt_tuning", training={"padding_free": "on"}).padding_free
    assert not prompt.enabled and prompt.warn
    dpo = decide(
        training_type="dpo",
        data={"path": "sample_data/preference_en.jsonl"},
        training={"padding_free": "on"},
    ).padding_free
    assert not dpo.enabled and dpo.warn


# ---------------------------------------------------------------- optimizer, checkpointing


def test_fused_adamw_replaces_plain_adamw_where_torch_has_it() -> None:
    fast = decide(CPU, CPU_PLAN, LLAMA_SDPA)
    assert fast.fused_optimizer.enabled
    assert fast.argument_values("activation_checkpointing")["optim"] == "adamw_torch_fused"
    no_cpu_kernel = replace(CPU, fused_adamw_devices=frozenset({"cuda"}))
    assert not decide(no_cpu_kernel, CPU_PLAN, LLAMA_SDPA).fused_optimizer.enabled


def test_fused_adamw_leaves_other_optimizers_alone() -> None:
    fast = decide(training={"optimizer": "paged_adamw_8bit"})
    assert not fast.fused_optimizer.enabled
    assert "optim" not in fast.argument_values("activation_checkpointing")
    demanded = decide(training={"optimizer": "adafactor", "fused_optimizer": "on"})
    assert demanded.fused_optimizer.warn


def test_activation_offloading_turns_checkpointing_on_and_offloads_on_cuda() -> None:
    training = config({"activation_offloading": True}).training
    checkpointing, offloading = choose_checkpointing(training, GPU)
    assert checkpointing.enabled and offloading.enabled
    fast = decide(training={"activation_offloading": True})
    values = fast.argument_values("activation_checkpointing")
    assert values["activation_checkpointing"] is True
    assert values["activation_checkpointing_kwargs"] == {"offload": True}


def test_activation_offloading_on_cpu_warns_and_leaves_checkpointing_as_configured() -> None:
    training = config({"activation_offloading": True}).training
    checkpointing, offloading = choose_checkpointing(training, CPU)
    assert not checkpointing.enabled and not offloading.enabled and offloading.warn
    old = replace(GPU, checkpoint_offload=False)
    assert choose_checkpointing(training, old)[1].warn


def test_torch_compile_is_asked_for_and_needs_a_compiler_on_cpu() -> None:
    assert not decide().compile.enabled
    assert decide(training={"torch_compile": True}).compile.enabled
    no_compiler = replace(CPU, compiler=False)
    choice = decide(no_compiler, CPU_PLAN, LLAMA_SDPA, training={"torch_compile": True}).compile
    assert not choice.enabled and choice.warn


def test_every_switch_has_one_log_line() -> None:
    lines = decide(CPU, CPU_PLAN, LLAMA_SDPA).log_lines()
    names = [text.split(" ")[2] for _, text in lines]
    assert len(lines) == 9 and len(set(names)) == len(names) - 1  # "fused" starts two
    assert all(text.startswith("fast path: ") for _, text in lines)
    assert Choice("x", True).line == "fast path: x on"


# ---------------------------------------------------------------- config


def test_yaml_on_and_off_mean_the_switch_words(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  liger_kernels: on\n  padding_free: off\n", encoding="utf-8")
    training = load_config(path).training
    assert training.liger_kernels == "on" and training.padding_free == "off"


def test_a_bad_switch_value_names_the_field_and_the_choices(tmp_path: Path) -> None:
    from studio.errors import ConfigError

    path = tmp_path / "run.yaml"
    path.write_text("training:\n  liger_kernels: fast\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line 2: training.liger_kernels = 'fast'" in caught.value.message
    assert "'auto', 'on' or 'off'" in caught.value.message


# ---------------------------------------------------------------- real models on CPU


def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return LlamaForCausalLM(shape).eval()


@pytest.mark.parametrize(
    ("targets", "wrapped"), [(["q_proj", "v_proj"], False), (["q_proj", "lm_head"], True)]
)
def test_inspect_model_sees_an_adapter_on_the_output_layer(targets, wrapped) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(small_llama(), LoraConfig(r=2, target_modules=targets))
    facts = inspect_model(model)
    assert facts.model_type == "llama" and not facts.quantized_4bit
    assert facts.head_wrapped is wrapped


def test_padding_free_batches_give_the_padded_loss(tiny_tokenizer) -> None:
    import torch

    from studio.engine.encoding import PaddingCollator
    from studio.engine.packing import PackedCollator
    from studio.engine.sft import padding_free_rows

    torch.manual_seed(0)
    model = small_llama()
    features = [{"input_ids": ids, "labels": list(ids)} for ids in ([5, 9, 11, 3, 7, 2], [4, 8, 1])]
    padded = PaddingCollator(pad_token_id=0)(features)
    flat = PackedCollator()(padding_free_rows(features))
    assert flat["input_ids"].shape == (1, 9)  # no padding token
    with torch.no_grad():
        loss_padded = model(**padded).loss
        loss_flat = model(**flat).loss
    assert torch.allclose(loss_padded, loss_flat, atol=1e-5)


@pytest.mark.slow
def test_a_cpu_run_logs_every_switch_and_trains_padding_free(tmp_path: Path) -> None:
    from tests.support.training_runs import log_text, train_tiny

    result, run_dir, _ = train_tiny(
        tmp_path,
        {
            "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 128},
            "training": {
                "max_steps": 2,
                "batch_size": 4,
                "padding_free": "on",
                "liger_kernels": "on",
                "activation_offloading": True,
            },
        },
    )
    assert result.state.value == "finished", log_text(run_dir)
    log = log_text(run_dir)
    assert "fast path: liger kernels off (needs CUDA)" in log
    assert "fast path: padding-free batches on" in log
    assert "fast path: fused AdamW on (adamw_torch_fused on cpu)" in log
    assert "fast path: activation offloading off (needs CUDA" in log


# ---------------------------------------------------------------- the benchmark harness


def test_benchmark_shapes_have_the_published_parameter_counts() -> None:
    from bench.shapes import SHAPES, TINY_SHAPE, total_parameters

    assert total_parameters(SHAPES["llama-3.2-1b"]) == 1_235_814_400
    assert total_parameters(SHAPES["llama-3-8b"]) == 8_030_261_248
    assert total_parameters(SHAPES["qwen2.5-7b"]) == 7_615_616_512
    from studio.models.tiny import MODEL_SHAPE, VOCAB_SIZE

    assert TINY_SHAPE["vocab_size"] == VOCAB_SIZE
    assert all(TINY_SHAPE[key] == value for key, value in MODEL_SHAPE.items() if key in TINY_SHAPE)


def test_lora_step_flops_are_4n_per_token_plus_causal_attention() -> None:
    from bench.flops import mfu, stated_peak_tflops, step_flops
    from bench.shapes import SHAPES, matmul_parameters

    shape = SHAPES["llama-3-8b"]
    n = matmul_parameters(shape)
    assert step_flops(shape, [4096]) == 4 * n * 4096 + 6 * 32 * 4096 * 4096**2
    assert step_flops(shape, [10, 10]) == 2 * step_flops(shape, [10])
    assert step_flops(shape, [1], frozen_base=False) == 6 * n + 6 * 32 * 4096
    assert stated_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert stated_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert stated_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert stated_peak_tflops("cpu") is None
    assert mfu(989e12, 2.0, 989.0) == 0.5 and mfu(1.0, 1.0, None) is None


def test_benchmark_batches_count_real_tokens_only() -> None:
    import torch

    from bench.timing import batch_lengths

    padded = {
        "input_ids": torch.zeros(2, 5),
        "attention_mask": torch.tensor([[1] * 5, [1, 1, 0, 0, 0]]),
    }
    assert batch_lengths(padded) == [5, 2]
    flat = {"input_ids": torch.zeros(1, 7), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1]])}
    assert batch_lengths(flat) == [3, 2, 2]


def test_benchmark_text_encodes_to_exactly_the_planned_tokens(tiny_tokenizer, tmp_path) -> None:
    from bench.workload import Workload, sequence_lengths, write_dataset

    workload = Workload(seq=64, batch=2, warmup=1, steps=2, lengths="mixed")
    ids = write_dataset(tiny_tokenizer, workload, tmp_path / "data.jsonl")
    assert [len(row) for row in ids] == sequence_lengths(workload)
    assert all(row[-1] == tiny_tokenizer.eos_token_id for row in ids)


@pytest.mark.bench
def test_the_benchmark_runs_every_arm_on_the_tiny_model() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", "2", "--warmup", "1", "--no-save"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "ftstudio vs transformers:" in done.stdout and "ftstudio vs trl:" in done.stdout


def test_probing_this_machine_never_raises() -> None:
    from studio.engine.fast_path import probe_machine

    machine = probe_machine()
    assert isinstance(machine.cuda, bool)
    if not machine.cuda:
        assert not machine.flash_attention and not machine.liger_model_types


# ---------------------------------------------------------------- GPU readiness (issue 20)


@pytest.mark.slow
def test_liger_patches_are_undone_when_the_run_ends(tmp_path: Path, monkeypatch) -> None:
    """Liger replaces the model classes of the whole process; a later run or chat model of the
    same type must be built without them. Liger itself is scripted (it needs CUDA): the stand-in
    patches modeling_llama the way `apply_liger_kernel_to_llama` does."""
    import transformers.trainer
    from transformers.models.llama import modeling_llama

    from studio.engine import fast_path
    from tests.support.training_runs import log_text, train_tiny

    original = (
        modeling_llama.LlamaRMSNorm,
        modeling_llama.apply_rotary_pos_emb,
        modeling_llama.LlamaForCausalLM.forward,
    )
    applied: list[dict] = []

    class PatchedRMSNorm(modeling_llama.LlamaRMSNorm):
        pass

    def fake_apply_liger_kernel(model, kernel_config):
        applied.append(kernel_config)
        modeling_llama.LlamaRMSNorm = PatchedRMSNorm
        rope = modeling_llama.apply_rotary_pos_emb
        modeling_llama.apply_rotary_pos_emb = lambda *args, **kwargs: rope(*args, **kwargs)
        forward = modeling_llama.LlamaForCausalLM.forward
        modeling_llama.LlamaForCausalLM.forward = lambda self, *a, **k: forward(self, *a, **k)

    liger_gpu = Machine(cuda=True, liger_version="0.0-test", liger_model_types=frozenset({"llama"}))
    monkeypatch.setattr(fast_path, "probe_machine", lambda: liger_gpu)
    monkeypatch.setattr(transformers.trainer, "apply_liger_kernel", fake_apply_liger_kernel)
    settings = {
        "data": {"path": "sample_data/alpaca_en.jsonl", "max_length": 64},
        "training": {"max_steps": 1, "batch_size": 2, "liger_kernels": "on"},
    }
    try:
        result, run_dir, _ = train_tiny(tmp_path, settings)
        assert result.state.value == "finished", log_text(run_dir)
        assert applied, "the run did not apply the (scripted) Liger kernels"
        assert "fast path: liger kernels on" in log_text(run_dir)
        assert (
            modeling_llama.LlamaRMSNorm,
            modeling_llama.apply_rotary_pos_emb,
            modeling_llama.LlamaForCausalLM.forward,
        ) == original
    finally:  # never leave the patch behind for the rest of this test process
        modeling_llama.LlamaRMSNorm, modeling_llama.apply_rotary_pos_emb = original[:2]
        modeling_llama.LlamaForCausalLM.forward = original[2]


def test_isolation_restores_module_names_and_class_methods() -> None:
    import torch.nn.functional
    from transformers.models.llama import modeling_llama

    from studio.engine.patch_isolation import isolated_model_code

    cross_entropy = torch.nn.functional.cross_entropy
    norm = modeling_llama.LlamaRMSNorm
    with isolated_model_code():
        modeling_llama.LlamaRMSNorm = object
        torch.nn.functional.cross_entropy = lambda *args: None
        modeling_llama.LlamaModel.extra_method = lambda self: 1  # inherited names: new ones
    assert modeling_llama.LlamaRMSNorm is norm
    assert torch.nn.functional.cross_entropy is cross_entropy
    assert not hasattr(modeling_llama.LlamaModel, "extra_method")


def test_triton_kernels_on_cuda_need_a_c_compiler() -> None:
    """Liger and torch.compile on CUDA compile Triton's driver module at step 1: without a C
    compiler they must be left off with a reason, not crash the first step."""
    slim = replace(GPU, compiler=False)
    fast = decide(slim, training={"torch_compile": True})
    assert not fast.liger.enabled and "C compiler" in fast.liger.reason
    assert not fast.compile.enabled and fast.compile.warn and "Triton" in fast.compile.reason
    demanded = decide(slim, training={"liger_kernels": "on"}).liger
    assert not demanded.enabled and demanded.warn
    assert decide(GPU, training={"torch_compile": True}).compile.enabled


def test_the_compiler_probe_follows_cc_and_path(tmp_path: Path, monkeypatch) -> None:
    from studio.engine.fast_path import find_c_compiler

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    assert find_c_compiler() is None  # a slim image: no gcc, clang or cc
    plain_cc = empty / "cc"
    plain_cc.write_text("#!/bin/sh\n")
    plain_cc.chmod(0o755)
    assert find_c_compiler() is None  # Triton looks for $CC, gcc and clang only
    fake = empty / "gcc"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_c_compiler() == str(fake)
    other = tmp_path / "my-cc"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("CC", str(other))
    assert find_c_compiler() == str(other)
    monkeypatch.setenv("CC", str(tmp_path / "missing-cc"))
    assert find_c_compiler() is None


def test_flash_attention_3_is_gated_on_its_own_package() -> None:
    fa3_only = replace(GPU, flash_attention=False, flash_attention_3=True)
    assert choose_attention("flash_attention_3", GPU_PLAN, fa3_only).value == "flash_attention_3"
    fa2_only = replace(GPU, flash_attention=True, flash_attention_3=False)
    refused = choose_attention("flash_attention_3", GPU_PLAN, fa2_only)
    assert refused.value == "sdpa" and refused.warn and "FlashAttention 3" in refused.reason
    assert choose_attention("flash_attention_2", GPU_PLAN, fa2_only).value == "flash_attention_2"
    assert choose_attention("flash_attention_2", GPU_PLAN, fa3_only).value == "sdpa"


class ScriptedQuantizedModel:
    """Stands in for a QLoRA model on CPU: a float32 embedding first (as
    `prepare_model_for_kbit_training` leaves it), then 4-bit weights stored as uint8, and logits
    whose packed forward differs from the separate ones by 1% of their scale: the size of
    bf16 matmul noise, not of examples attending to each other."""

    def __init__(self, gap: float) -> None:
        import torch

        self.gap = gap
        self.embedding = torch.nn.Parameter(torch.eye(64))
        self.quantized = torch.nn.Parameter(torch.zeros(32, dtype=torch.uint8), False)
        self.training = False
        self.config = None

    def parameters(self):
        return iter([self.embedding, self.quantized])

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, input_ids, position_ids=None, **_):
        from types import SimpleNamespace

        logits = self.embedding[input_ids] + 0.5
        if position_ids is not None:  # the packed forward
            logits = logits * (1 + self.gap)
        return SimpleNamespace(logits=logits)


def test_packing_tolerance_follows_the_compute_dtype_not_the_first_parameter() -> None:
    from studio.engine.packing import check_isolation, isolation_tolerance
    from studio.errors import ConfigError

    features = [{"input_ids": [1, 2, 3, 4], "labels": [1, 2, 3, 4]}] * 2
    assert check_isolation(ScriptedQuantizedModel(gap=0.01), features) > 1e-3
    with pytest.raises(ConfigError, match="attend to each other"):  # a real leak still is
        check_isolation(ScriptedQuantizedModel(gap=0.2), features)
    assert isolation_tolerance(small_llama()) == 1e-3  # all float32: strict
    assert isolation_tolerance(ScriptedQuantizedModel(gap=0)) == 3e-2


def test_the_benchmark_peak_table_matches_whole_model_names() -> None:
    from bench.flops import stated_peak_tflops

    assert stated_peak_tflops("NVIDIA H200 NVL") == 835.0  # not the SXM H200's 989
    assert stated_peak_tflops("NVIDIA H200") == 989.0
    assert stated_peak_tflops("NVIDIA GH200 480GB") == 989.0
    assert stated_peak_tflops("NVIDIA L40") == 181.0  # not the L4's 121
    assert stated_peak_tflops("NVIDIA L40S") == 362.0
    assert stated_peak_tflops("NVIDIA L4") == 121.0
    assert stated_peak_tflops("NVIDIA H100 NVL") == 835.0


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_qlora_baseline_checkpoints_only_as_the_workload_says(checkpointing: bool) -> None:
    """peft's prepare_model_for_kbit_training turns gradient checkpointing on by default: the
    transformers arm of a QLoRA row must not get it when the ftstudio arm does not."""
    from bench.arms import prepare_baseline_model
    from bench.workload import Workload

    model = small_llama()
    model.is_loaded_in_4bit = True  # what peft looks at; real 4-bit weights need CUDA
    prepared = prepare_baseline_model(
        model, Workload(method="qlora", rank=2, checkpointing=checkpointing)
    )
    assert prepared.is_gradient_checkpointing is checkpointing

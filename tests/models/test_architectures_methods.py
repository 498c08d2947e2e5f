"""The architecture matrix: tiny random models of the families users bring, each trained a
few steps with the studio's methods, reloaded from the run folder in chat (final result and
checkpoint) with every trained tensor equal to what was saved, exported (a standalone model
where the method allows, computing what chat computes), and resumed with every trained tensor
restored. See tests/support/architecture_matrix.py for one case.

The full cross product (10 architectures x 9 methods) is 90 runs; this file and
test_architectures_families.py run 61 of them, about 4 s each on one core:

- every method on Llama (the reference), GPT-2 (Conv1D layers, fused q/k/v, learned position
  embeddings) and Qwen2-MoE (fused expert tensors, shared expert): the virtual-token and
  bottleneck methods touch the architecture only through the embeddings, the decoder-layer
  stack and the attention cache, which these three cover in all their forms;
- every architecture with the methods whose behaviour depends on its layer names and weight
  layout (LoRA, QLoRA, IA3, full, freeze), in test_architectures_families.py.

Every case trains a model, so all are marked slow. The cases that each caught a bug, worth
running first (`-k`) after a change to loading or saving: qwen2_moe-full (per-expert weights
become fused tensors on load), qwen2_moe-freeze, qwen2_moe-lora (experts adapted through
target_parameters), gpt2-lora (Conv1D, merged export), llama-prefix_tuning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.architecture_matrix import METHODS, check_case

ARCHITECTURES = ("llama", "gpt2", "qwen2_moe")
CASES = [
    (model_type, method)
    for model_type in ARCHITECTURES
    for method in METHODS
    if (model_type, method) != ("qwen2_moe", "qlora")  # refused: see test_methods_targets.py
]


@pytest.mark.slow
@pytest.mark.parametrize(("model_type", "method"), CASES)
def test_trains_reloads_exports_and_resumes(
    model_type: str, method: str, architecture_dir, tmp_path: Path, monkeypatch
) -> None:
    check_case(architecture_dir(model_type), method, tmp_path, monkeypatch)

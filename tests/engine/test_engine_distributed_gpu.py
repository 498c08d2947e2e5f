"""On a machine with two CUDA GPUs (`python -m pytest -m gpu`): the same group runs on NCCL.

DDP for LoRA and FSDP2 for a full fine-tune of the tiny model, each against one GPU with the
same global batch. bf16 on GPUs sums in a different order per layout, so the tolerance is
wider than on CPU. Not run in CI (no GPU there).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import config_from_dict
from studio.engine.events import EventBus, RunState
from studio.engine.launcher import GroupSession, session_for_config
from tests.conftest import REPO
from tests.engine.test_engine_distributed import Group, losses, settings

pytestmark = pytest.mark.gpu

GPU_LOSS_TOLERANCE = 2e-2


def two_gpus() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and torch.cuda.device_count() >= 2


@pytest.mark.skipif(not two_gpus(), reason="needs two CUDA GPUs")
@pytest.mark.parametrize(("method", "strategy"), [("lora", "ddp"), ("full", "fsdp")])
def test_two_gpus_match_one_gpu_with_the_same_global_batch(
    tmp_path: Path, method: str, strategy: str
) -> None:
    def run(gpus: str, batch_size: int) -> Path:
        data = settings(tmp_path / gpus.replace(",", "-"), batch_size=batch_size)
        data["method"] = {"name": method} if method == "full" else data["method"]
        data["devices"] = {"gpus": gpus}
        session = session_for_config(config_from_dict(data), EventBus(), base_dir=REPO)
        result = Group(session).finish(timeout=600)
        assert result.state is RunState.FINISHED, result
        if "," in gpus:
            assert isinstance(session, GroupSession)
            log = (Path(result.run_dir) / "log.txt").read_text(encoding="utf-8")
            assert f"({strategy})" in log
        return Path(result.run_dir)

    one, two = losses(run("0", 4)), losses(run("0,1", 2))
    assert one.keys() == two.keys()
    for step, loss in two.items():
        assert loss == pytest.approx(one[step], rel=GPU_LOSS_TOLERANCE), f"step {step}"

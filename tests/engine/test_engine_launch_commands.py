"""The torchrun commands and the Slurm script, read back by torchrun's own argument parser."""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from torch.distributed.run import parse_args

from studio.cli import main
from studio.engine.launcher import NodeSpec, group_failure, slurm_script, torchrun_arguments
from studio.engine.rank import _parser as rank_parser
from studio.errors import ConfigError
from tests.conftest import SAMPLE_DATA


def test_one_machine_group_is_standalone_with_one_process_per_device() -> None:
    arguments = torchrun_arguments(NodeSpec(4), "runs/a", resume=True)
    parsed = parse_args(arguments)
    assert parsed.standalone and parsed.nnodes == "1" and parsed.nproc_per_node == "4"
    assert parsed.module and parsed.training_script == "studio.engine.rank"
    assert parsed.max_restarts == 0
    rank = rank_parser().parse_args(parsed.training_script_args)
    assert rank.run_dir == "runs/a" and rank.resume


def test_a_node_of_a_multi_node_run_meets_the_others_at_the_rendezvous() -> None:
    spec = NodeSpec(8, nodes=2, node_rank=1, rendezvous="node0:29500", run_id="big")
    parsed = parse_args(torchrun_arguments(spec, "/shared/runs/big", config_path="/shared/c.yaml"))
    assert (parsed.nnodes, parsed.node_rank, parsed.nproc_per_node) == ("2", 1, "8")
    assert parsed.rdzv_backend == "c10d" and parsed.rdzv_endpoint == "node0:29500"
    assert parsed.rdzv_id == "big" and not parsed.standalone
    rank = rank_parser().parse_args(parsed.training_script_args)
    assert (rank.run_dir, rank.config, rank.resume) == ("/shared/runs/big", "/shared/c.yaml", False)


def test_a_bad_node_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rendezvous"):
        NodeSpec(2, nodes=2)
    with pytest.raises(ConfigError, match="node rank 2"):
        NodeSpec(2, nodes=2, node_rank=2, rendezvous="h:1")


def _torchrun_line_of(script: str, environment: dict[str, str]) -> list[str]:
    """The torchrun argv one node's srun task runs, with Slurm's variables filled in."""
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    inner = shlex.split(srun)[-1]  # the bash -c '...' string
    for key, value in environment.items():
        inner = inner.replace("$" + key, value)
    assert "$" not in inner
    return shlex.split(inner)


def test_slurm_script_runs_one_torchrun_per_node_that_torchrun_accepts() -> None:
    script = slurm_script(
        "/shared/run.yaml",
        "/shared/runs/big",
        nodes=3,
        gpus_per_node=4,
        job_name="big",
        time_limit="02:00:00",
        base_dir="/shared/work",
    )
    assert script.startswith("#!/bin/bash\n")
    for directive in ("--nodes=3", "--gpus-per-node=4", "--ntasks-per-node=1", "--time=02:00:00"):
        assert f"#SBATCH {directive}" in script
    assert "export head_node=$(scontrol show hostnames" in script
    for node in range(3):
        argv = _torchrun_line_of(
            script, {"SLURM_NODEID": str(node), "head_node": "gpu-a1", "SLURM_JOB_ID": "777"}
        )
        assert argv[0] == "torchrun"
        parsed = parse_args(argv[1:])
        assert (parsed.nnodes, parsed.node_rank, parsed.nproc_per_node) == ("3", node, "4")
        assert parsed.rdzv_endpoint == "gpu-a1:29500" and parsed.rdzv_id == "777"
        rank = rank_parser().parse_args(parsed.training_script_args)
        assert (rank.run_dir, rank.config, rank.base_dir) == (
            "/shared/runs/big",
            "/shared/run.yaml",
            "/shared/work",
        )


def test_ftstudio_train_prints_the_node_command_and_writes_the_slurm_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(SAMPLE_DATA / "configs" / "quickstart.yaml")
    common = ["--set", "output.run_name=big", "--set", "devices.gpus=0,1"]
    assert (
        main(
            [
                "train",
                config,
                "--nodes",
                "2",
                "--node-rank",
                "1",
                "--rendezvous",
                "node0:29500",
                *common,
            ]
        )
        == 0
    )
    printed = shlex.split(capsys.readouterr().out.strip())
    assert printed[0] == "CUDA_VISIBLE_DEVICES=0,1" and printed[1] == "torchrun"
    parsed = parse_args(printed[2:])
    assert (parsed.nnodes, parsed.node_rank, parsed.nproc_per_node) == ("2", 1, "2")
    rank = rank_parser().parse_args(parsed.training_script_args)
    assert rank.run_dir == str(tmp_path / "runs" / "big")
    saved = yaml.safe_load(Path(rank.config).read_text(encoding="utf-8"))
    assert saved["output"]["run_name"] == "big" and saved["devices"]["gpus"] == "0,1"

    assert main(["train", config, "--slurm-script", "job.sbatch", "--nodes", "2", *common]) == 0
    script = (tmp_path / "job.sbatch").read_text(encoding="utf-8")
    argv = _torchrun_line_of(script, {"SLURM_NODEID": "0", "head_node": "h", "SLURM_JOB_ID": "1"})
    assert parse_args(argv[1:]).nproc_per_node == "2"


def test_a_multi_node_run_needs_a_run_name(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(SAMPLE_DATA / "configs" / "quickstart.yaml")
    assert main(["train", config, "--nodes", "2", "--rendezvous", "h:1"]) != 0
    assert "output.run_name" in capsys.readouterr().err


def test_group_failure_names_the_rank_and_its_error_or_its_signal(tmp_path: Path) -> None:
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    (ranks / "rank-1.json").write_text(
        '{"rank": 1, "error": {"kind": "out_of_memory", "message": "CUDA out of memory", '
        '"advice": ["halve batch_size"], "step": 7, "batch_shape": [4, 512]}}',
        encoding="utf-8",
    )
    failure = SimpleNamespace(pid=4321, exitcode=1, timestamp=10)
    later = SimpleNamespace(pid=4320, exitcode=-signal.SIGTERM, timestamp=12)
    record = group_failure(tmp_path, {0: later, 1: failure})
    assert record["rank"] == 1 and record["kind"] == "out_of_memory"
    assert record["message"] == "rank 1 failed: CUDA out of memory (rank 0 failed with it)"
    assert record["advice"] == ["halve batch_size"] and record["step"] == 7
    assert record["batch_shape"] == [4, 512]  # what the out-of-memory triage needs

    killed = SimpleNamespace(pid=99, exitcode=-signal.SIGKILL, timestamp=5)
    record = group_failure(tmp_path, {0: killed})
    assert record["rank"] == 0 and "rank 0 (pid 99) was killed by SIGKILL" in record["message"]
    assert any("out-of-memory killer" in advice for advice in record["advice"])
    assert any("--resume" in advice for advice in record["advice"])
    assert os.fspath(tmp_path) in record["advice"][-1]


def test_the_cause_is_the_killed_rank_not_the_one_that_lost_its_peer(tmp_path: Path) -> None:
    """Rank 0 fails first in the same second with a gloo error about its lost peer."""
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    (ranks / "rank-0.json").write_text(
        '{"rank": 0, "error": {"kind": "internal", "message": "RuntimeError: [gloo] Read '
        'error: Connection reset by peer"}}',
        encoding="utf-8",
    )
    lost_peer = SimpleNamespace(pid=1, exitcode=1, timestamp=100)
    killed = SimpleNamespace(pid=2, exitcode=-signal.SIGKILL, timestamp=100)
    record = group_failure(tmp_path, {0: lost_peer, 1: killed})
    assert record["rank"] == 1
    assert record["message"] == "rank 1 (pid 2) was killed by SIGKILL (rank 0 failed with it)"
    # A rank's own error comes before another rank's lost-peer error, whatever the order.
    (ranks / "rank-1.json").write_text(
        '{"rank": 1, "error": {"kind": "data", "message": "bad record"}}', encoding="utf-8"
    )
    record = group_failure(tmp_path, {0: lost_peer, 1: SimpleNamespace(pid=2, exitcode=1)})
    assert record["rank"] == 1 and record["kind"] == "data"
    # torchrun's own SIGTERM to the survivors is never the cause.
    terminated = SimpleNamespace(pid=3, exitcode=-signal.SIGTERM, timestamp=1)
    assert group_failure(tmp_path, {0: terminated, 1: killed})["rank"] == 1


def test_group_arguments_ddp_for_adapters_fsdp2_for_full_finetunes_on_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import TrainingArguments

    from studio.config import config_from_dict
    from studio.engine.distributed import group_argument_values

    gpu, cpu = SimpleNamespace(device="cuda"), SimpleNamespace(device="cpu")
    lora, full = config_from_dict({"method": "lora"}), config_from_dict({"method": "full"})
    assert group_argument_values(full, gpu) == {}  # not in a group: nothing changes
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert group_argument_values(lora, gpu) == {
        "ddp_backend": "nccl",
        "ddp_find_unused_parameters": False,
    }
    assert group_argument_values(full, cpu)["ddp_backend"] == "gloo"
    assert "fsdp" not in group_argument_values(full, cpu)  # accelerate does not shard on CPU
    values = group_argument_values(full, gpu)
    assert values["fsdp"] is True and values["fsdp_config"]["version"] == 2
    forced = config_from_dict({"method": "lora", "devices": {"strategy": "fsdp"}})
    assert group_argument_values(forced, gpu)["fsdp"] is True
    # What transformers makes of them: accelerate's FSDP2 plugin, one unit per decoder layer.
    monkeypatch.delenv("WORLD_SIZE")
    fsdp = {key: values[key] for key in ("fsdp", "fsdp_config")}
    arguments = TrainingArguments(output_dir="unused", use_cpu=True, **fsdp)
    assert arguments.fsdp_plugin_args == {
        "fsdp_version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_ram_efficient_loading": False,
        "state_dict_type": "FULL_STATE_DICT",
        "reshard_after_forward": True,
    }

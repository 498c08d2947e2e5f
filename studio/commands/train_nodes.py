"""`ftstudio train RUN.yaml --nodes N ...`: the torchrun command for one node, or a Slurm script.

A multi-node run is started on every node by torch's launcher; ftstudio writes the command
(or runs it with `--launch`) and the sbatch script, and the group writes one run folder on a
filesystem all nodes share: `output.runs_dir/output.run_name`, a name every node knows.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from studio.config import RunConfig, load_config
from studio.errors import ConfigError


def group_gpus_per_node(config: RunConfig) -> int:
    indices = config.devices.indices
    return len(indices) if indices is not None else config.devices.gpu_count


def shared_run_dir(config: RunConfig) -> Path:
    if not config.output.run_name:
        raise ConfigError(
            "a multi-node run needs output.run_name: every node must write the same run folder",
            advice="add --set output.run_name=NAME (and keep output.runs_dir on a shared "
            "filesystem)",
        )
    return Path(config.output.runs_dir).expanduser().absolute() / config.output.run_name


def node_command(
    config_path: str, overrides: list[str], nodes: int, node_rank: int, rendezvous: str | None
) -> list[str]:
    """The environment and torchrun command line for this node (as argv)."""
    from studio.engine.launcher import NodeSpec, torchrun_arguments

    config = load_config(config_path, overrides)
    run_dir = shared_run_dir(config)
    spec = NodeSpec(
        group_gpus_per_node(config),
        nodes,
        node_rank,
        rendezvous,
        config.output.run_name or "ftstudio",
    )
    saved = _saved_config(config, run_dir)
    prefix = []
    if config.devices.indices is not None:
        prefix = [f"CUDA_VISIBLE_DEVICES={config.devices.gpus}"]
    return [
        *prefix,
        "torchrun",
        *torchrun_arguments(spec, run_dir, config_path=saved, base_dir=Path.cwd()),
    ]


def _saved_config(config: RunConfig, run_dir: Path) -> Path:
    """The config (overrides applied) beside the run folder, for the ranks to read."""
    from studio.config import save_config

    path = run_dir.with_name(run_dir.name + ".config.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(config, path)
    return path


def print_or_launch(
    config_path: str,
    overrides: list[str],
    nodes: int,
    node_rank: int,
    rendezvous: str | None,
    launch: bool,
) -> int:
    argv = node_command(config_path, overrides, nodes, node_rank, rendezvous)
    print(shlex.join(argv))
    if not launch:
        return 0
    environment = dict(os.environ)
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        key, _, value = argv.pop(0).partition("=")
        environment[key] = value
    os.execvpe(argv[0], argv, environment)  # this process becomes the node's torchrun
    return 1  # not reached


def write_slurm_script(
    config_path: str, overrides: list[str], nodes: int, output: str, port: int
) -> int:
    from studio.engine.launcher import slurm_script

    config = load_config(config_path, overrides)
    run_dir = shared_run_dir(config)
    script = slurm_script(
        _saved_config(config, run_dir),
        run_dir,
        nodes=nodes,
        gpus_per_node=group_gpus_per_node(config),
        job_name=config.output.run_name or "ftstudio",
        port=port,
        base_dir=Path.cwd(),
    )
    Path(output).write_text(script, encoding="utf-8")
    print(f"wrote {output}: submit it with `sbatch {output}`; the run writes {run_dir}")
    return 0

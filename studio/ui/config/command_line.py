"""The `ftstudio train` command line that runs the config on the Config screen headless.

With a saved YAML file it is `ftstudio train FILE`, plus one `--set key=value` for each field
changed since the file was saved; without a file, the defaults are written first. Running the
line reproduces the config exactly (tests/ui/test_ui_command_line.py checks the round trip).
"""

from __future__ import annotations

import shlex
from typing import Any

from studio.config import RunConfig, config_to_dict, flatten, method_defaults


def yaml_value(value: Any) -> str:
    """The value as YAML the `--set` parser reads back to the same value."""
    import yaml

    if value is None:
        return "null"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def overrides_between(base: RunConfig, target: RunConfig) -> list[str]:
    """`key=value` overrides that turn `base` into `target` (method.name first)."""
    overrides = []
    base_data = config_to_dict(base)
    if base.method.name != target.method.name:
        overrides.append(f"method.name={target.method.name}")
        # Switching method starts from that method's defaults.
        base_data["method"] = method_defaults(target.method.name).model_dump(mode="json")
    base_flat = flatten(base_data)
    for key, value in flatten(config_to_dict(target)).items():
        if key == "method.name":
            continue
        if key not in base_flat or base_flat[key] != value:
            overrides.append(f"{key}={yaml_value(value)}")
    return overrides


def train_command_line(
    config: RunConfig, config_file: str | None, saved: RunConfig | None
) -> tuple[str, bool]:
    """(command line, needs_save): the shell line, and whether a save would shorten it."""
    if config_file and saved is not None:
        overrides = overrides_between(saved, config)
        parts = ["ftstudio", "train", config_file]
        for override in overrides:
            parts += ["--set", override]
        return shlex.join(parts), bool(overrides)
    target = config_file or "run.yaml"
    parts = ["ftstudio", "train", target]
    for override in overrides_between(RunConfig(), config):
        parts += ["--set", override]
    defaults = f"ftstudio config --defaults > {shlex.quote(target)}"
    return f"{defaults} && {shlex.join(parts)}", True

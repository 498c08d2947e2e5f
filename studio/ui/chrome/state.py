"""What the studio's screens share: the run config being built, and where things live.

`StudioServices` holds what tests and snapshots inject (folders, the hub cache, the clock of
the world outside); `StudioState` holds what the user has chosen so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import RunConfig
from studio.ui.config.starter import starter_config


@dataclass(frozen=True)
class StudioServices:
    """Where the studio looks for things. The defaults are the real machine's."""

    workdir: Path = field(default_factory=Path.cwd)
    """Relative dataset, config and runs paths are read from here (the folder ftstudio ran in)."""
    hub_cache_dir: Path | None = None
    """The Hugging Face cache to list models from; None: huggingface_hub's default."""
    settings_file: Path | None = None
    """The settings file; None: $XDG_CONFIG_HOME/ftstudio/settings.yaml."""
    user_themes_dir: Path | None = None
    """Folder of the user's theme files; None: $XDG_CONFIG_HOME/ftstudio/themes."""
    telemetry_interval: float | None = 1.0
    """Seconds between telemetry samples during a run; None turns telemetry off."""
    nvml_module: Any = None
    """What the device picker reads GPUs through; None: pynvml (tests: telemetry.fake_nvml)."""

    def resolve(self, path: str | Path) -> Path:
        """A path as the user wrote it, made absolute against the working folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.workdir / candidate

    def display(self, path: str | Path) -> str:
        """A path as short as possible: relative to the working folder when inside it."""
        candidate = Path(path)
        try:
            return str(candidate.resolve().relative_to(self.workdir.resolve()))
        except (ValueError, OSError):
            return str(candidate)


@dataclass
class StudioState:
    """The user's choices, shared by every screen."""

    config: RunConfig = field(default_factory=starter_config)
    """The last valid config the Config screen produced (what Start trains)."""
    config_problem: str | None = None
    """Why the form's current values are not a valid config, or None when they are."""
    config_file: str | None = None
    """The YAML file the config was loaded from or saved to, as the user wrote it."""
    config_file_saved: RunConfig | None = None
    """The config as it is in `config_file`, to show what changed since."""
    last_run_dir: str | None = None
    """The newest run this session started."""

"""Read a run's `telemetry.jsonl` back into snapshots (for the Runs screen and reports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.telemetry.snapshots import TelemetrySnapshot


def read_telemetry_jsonl(path: str | Path) -> list[TelemetrySnapshot]:
    """Snapshots in file order. A line that is not a snapshot (e.g. the torn last line of a
    run that was killed) is skipped rather than failing the whole replay."""
    snapshots: list[TelemetrySnapshot] = []
    # errors="replace": a damaged line is skipped below, it does not end the replay.
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
                # The engine may write the snapshot bare or inside a TelemetryEvent dict.
                if isinstance(data, dict) and isinstance(data.get("snapshot"), dict):
                    data = data["snapshot"]
                snapshots.append(TelemetrySnapshot.from_dict(data))
            except (ValueError, KeyError, TypeError):
                continue
    return snapshots

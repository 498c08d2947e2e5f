"""Writing small data files for tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def write_jsonl(path: Path, rows: Iterable[object]) -> Path:
    """Write `rows` to `path` as JSON Lines, one a line; a str row is written as it is, so a
    test can plant a broken line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path

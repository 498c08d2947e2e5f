"""`python -m bench.data_prep` end to end on a small generated file (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_data_prep_benchmark_runs_every_arm_and_records_the_figures(tmp_path: Path) -> None:
    output = tmp_path / "data-prep.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.data_prep", "--records", "2000", "--output", str(output)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(output.read_text())
    arms = {row["arm"]: row for row in record["results"]}
    assert set(arms) == {"ftstudio-cold", "ftstudio-warm", "trl", "datasets-map"}
    assert not arms["ftstudio-cold"]["from_cache"] and arms["ftstudio-warm"]["from_cache"]
    # Every arm prepared every record (none is long enough to be dropped at max_length 256).
    assert {row["examples"] for row in arms.values()} == {2000}
    for row in arms.values():
        assert row["seconds"] > 0 and row["peak_pss_bytes"] >= row["baseline_pss_bytes"] > 0
    assert "| ftstudio-warm |" in done.stdout and "records/s" in record["table"]


def test_repeated_rounds_rotate_the_arms_and_report_each_arms_median() -> None:
    from bench.data_prep import rounds, summarize

    abc, bca, cab = ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]
    assert rounds(["a", "b", "c"], 4) == [abc, bca, cab, abc]
    mib = 1024**2
    runs = [
        {"arm": "a", "seconds": s, "peak_pss_bytes": peak * mib, "baseline_pss_bytes": 100 * mib}
        for s, peak in [(3.0, 150), (1.0, 300), (2.0, 120)]
    ] + [{"arm": "b", "seconds": 5.0, "peak_pss_bytes": 200 * mib, "baseline_pss_bytes": 0}]
    first, second = summarize(runs)
    assert first["arm"] == "a" and first["seconds"] == 2.0 and first["runs"] == 3
    assert first["seconds_each"] == [3.0, 1.0, 2.0]
    assert first["peak_pss_bytes"] == 300 * mib  # the heaviest run's memory, not the median's
    assert second["arm"] == "b" and second["seconds"] == 5.0

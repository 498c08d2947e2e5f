"""The one-command GPU check on a machine without a GPU: it says so, its dry run goes through
every stage on the CPU, and it installs what is missing from a local wheel folder."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench import gpu_check, gpu_wheels
from tests.conftest import REPO


def check_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.gpu_check", str(out), *extra]


@pytest.mark.slow
def test_without_a_gpu_it_says_so_and_exits_cleanly(tmp_path: Path) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    done = subprocess.run(
        check_command(tmp_path / "out", "--wheels", str(empty)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA GPU on this machine" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["machine"]["cuda"] is False
    assert summary["stages"]["install"]["missing_after"] == []


@pytest.mark.slow
def test_the_dry_run_goes_through_every_stage_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    done = subprocess.run(
        check_command(out, "--dry-run", "--wheels", str(empty)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert done.returncode == 0, json.dumps(summary, indent=2) + (out / "check.log").read_text()
    stages = summary["stages"]
    assert [stages[name]["outcome"] for name in ("gpu-tests", "spill", "screenshot")] == [
        "passed"
    ] * 3
    assert stages["fast-path"]["outcome"] == "passed"
    collected = stages["gpu-tests"]["collected"]
    assert any("test_qlora_nf4_with_paged_adamw_8bit" in test for test in collected)
    assert len(collected) >= 10
    spill = json.loads((out / "spill.json").read_text())
    assert spill["state"] == "finished" and spill["snapshots"] > 0
    assert (out / "telemetry.jsonl").stat().st_size > 0
    assert (out / "memory-panel.svg").read_text().startswith("<svg")
    record = json.loads((out / "fast-path.json").read_text())
    assert record  # the benchmark's record of both arms
    # What comes back from the device machine: at most 8 files, in OUT itself.
    assert len(list(out.iterdir())) <= 8 and all(path.is_file() for path in out.iterdir())


def make_wheel(folder: Path, module: str) -> Path:
    """A minimal pure-Python wheel holding one module."""
    name = f"{module}-1.0-py3-none-any.whl"
    info = f"{module}-1.0.dist-info"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        wheel.writestr(f"{module}.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return folder / name


@pytest.mark.slow
def test_missing_packages_are_installed_from_the_wheel_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an air-gapped server: no registry, only `.whl/` (here a wheel of a made-up module)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "ftstudio_check_probe")
    site = tmp_path / "site"
    monkeypatch.setattr(gpu_check, "SITE", site)
    monkeypatch.setattr(gpu_check, "REQUIRED", {"ftstudio_check_probe": "ftstudio-check-probe"})
    monkeypatch.setattr(gpu_check, "OPTIONAL", {})
    monkeypatch.setattr(sys, "path", list(sys.path))
    check = gpu_check.Check(tmp_path / "out", budget=60, dry_run=False)
    result = gpu_check.install_from_wheels(check, wheels)
    assert result["missing_before"] == ["ftstudio_check_probe"]
    assert result["pip_exit"] == 0 and result["missing_after"] == []
    assert (site / "ftstudio_check_probe.py").exists()
    assert check.env["PYTHONPATH"].split(":")[0] == str(site)  # the stages import from it
    probe = "import ftstudio_check_probe as p; print(p.VALUE)"
    done = subprocess.run([sys.executable, "-c", probe], env=check.env, capture_output=True)
    assert done.stdout.strip() == b"42"


def test_missing_packages_without_wheels_say_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_check, "SITE", tmp_path / "site")
    monkeypatch.setattr(gpu_check, "REQUIRED", {"ftstudio_no_such_module": "nothing"})
    check = gpu_check.Check(tmp_path / "out", budget=60, dry_run=False)
    result = gpu_check.install_from_wheels(check, tmp_path / "absent")
    assert result["missing_after"] == ["ftstudio_no_such_module"]
    assert "python -m bench.gpu_wheels" in result["advice"]
    assert gpu_check.main([str(tmp_path / "out2"), "--wheels", str(tmp_path / "absent")]) == 1


def test_the_wheel_folder_is_prepared_for_the_server_and_never_committed() -> None:
    requirements = gpu_wheels.pinned_requirements()
    names = {requirement.split("==")[0] for requirement in requirements}
    assert {"bitsandbytes", "trl", "datasets", "textual", "liger-kernel", "pydantic"} <= names
    assert not names & {"torch", "transformers", "peft", "accelerate", "pyarrow", "triton"}
    command = gpu_wheels.download_command(requirements, Path(".whl"))
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "manylinux2014_x86_64" in command
    ignored = subprocess.run(["git", "check-ignore", "-q", ".whl/x.whl"], cwd=REPO)
    assert ignored.returncode == 0
    assert gpu_wheels.wheel_prefix("pydantic-core==2.50.5") == "pydantic_core-2.50.5-"

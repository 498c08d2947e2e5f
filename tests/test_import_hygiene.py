"""The core never imports the UI, and the CLI's help never imports torch."""

from __future__ import annotations

import resource
import subprocess
import sys

from tests.conftest import REPO


def modules_after(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return set(result.stdout.split())


def test_core_packages_do_not_import_textual() -> None:
    loaded = modules_after(
        "import studio.engine, studio.engine.session, studio.config, studio.data, studio.models, "
        "studio.models.sources, studio.methods.registry, studio.commands.train_console"
    )
    assert not any(name == "textual" or name.startswith("textual.") for name in loaded)


def test_config_and_data_do_not_import_torch() -> None:
    loaded = modules_after("import studio.config, studio.formatting, studio.data, studio.cli")
    assert "torch" not in loaded
    assert "transformers" not in loaded


def test_help_is_fast_and_torch_free() -> None:
    # CPU seconds of the child, not wall time: on two shared cores a busy neighbour (another
    # test worker, a build) stretches wall time without `--help` importing anything more.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "studio", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert "ftstudio" in result.stdout and "train" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "torch" not in imported
    assert cpu < 1.0, f"ftstudio --help took {cpu:.2f} s of CPU"

"""Prepare the wheel folder that the GPU check installs from on an air-gapped GPU server.

    python -m bench.gpu_wheels            # into .whl/ (ignored by git), about 48 MB

Run it where pip reaches a package registry (this development machine). It downloads, for
CPython 3.12 on manylinux x86-64, the packages that a GPU server with torch (CUDA),
transformers, peft, accelerate, nvidia-ml-py, pyarrow and triton lacks, at the versions
installed here (the ones the tests ran with), each without its dependencies: the list below
names those dependencies that such a server lacks too. Copy the repository with `.whl/` to the
server and run `python -m bench.gpu_check OUT_DIR` there; the folder and the repository stay
under 64 MiB together.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

from bench.gpu_check import WHEELS

# Distribution -> version when it is not installed here (liger-kernel needs CUDA to be useful).
PACKAGES: dict[str, str | None] = {
    "bitsandbytes": None,
    "trl": None,
    "datasets": None,
    "dill": None,  # datasets
    "multiprocess": None,  # datasets
    "textual": None,
    "textual-plotext": None,
    "plotext": None,
    "mdit-py-plugins": None,  # textual
    "platformdirs": None,  # textual
    "pydantic": None,
    "pydantic-core": None,
    "annotated-types": None,  # pydantic
    "typing-inspection": None,  # pydantic
    "typing-extensions": None,  # pydantic needs a recent one
    "liger-kernel": "0.8.5",
}
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
LIMIT_BYTES = 64 * 1024**2  # what travels to the device machine, the repository included


def pinned_requirements() -> list[str]:
    """NAME==VERSION for each package: the version installed here, else the default above."""
    requirements = []
    for name, default in PACKAGES.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = default
        if version is None:
            raise SystemExit(f"error: {name} is not installed here and has no default version")
        requirements.append(f"{name}=={version}")
    return requirements


def download_command(requirements: list[str], folder: Path) -> list[str]:
    platforms = [part for platform in PLATFORMS for part in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
        *platforms, "--dest", str(folder), *requirements,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_wheels", description=__doc__)
    parser.add_argument("--dest", type=Path, default=WHEELS, help="wheel folder (.whl/)")
    parser.add_argument("--print", action="store_true", help="print the pip command only")
    args = parser.parse_args(argv)
    command = download_command(pinned_requirements(), args.dest)
    if args.print:
        print(" ".join(command))
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        return done.returncode
    requested = {wheel_prefix(requirement) for requirement in pinned_requirements()}
    stale = [
        wheel
        for wheel in args.dest.glob("*.whl")
        if not any(wheel.name.lower().startswith(prefix) for prefix in requested)
    ]
    size = sum(wheel.stat().st_size for wheel in args.dest.glob("*.whl"))
    print(f"{len(list(args.dest.glob('*.whl')))} wheels, {size / 1024**2:.1f} MiB in {args.dest}")
    if stale:
        print("not asked for now (remove them: two versions of one package stop the install):")
        for wheel in stale:
            print(f"  {wheel.name}")
    if size > LIMIT_BYTES:
        print(f"warning: more than {LIMIT_BYTES // 1024**2} MiB", file=sys.stderr)
    return 0


def wheel_prefix(requirement: str) -> str:
    """How the wheel of NAME==VERSION starts: `pydantic_core-2.50.5-`."""
    name, version = requirement.split("==")
    return f"{name.replace('-', '_').replace('.', '_').lower()}-{version}-"


if __name__ == "__main__":
    sys.exit(main())

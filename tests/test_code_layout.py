"""The code's layout rules that neither ruff, mypy nor the import contracts check."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

STUDIO = Path(__file__).resolve().parents[1] / "studio"

# Names several modules define on purpose, because each module plays the same role: the
# members of a method module (studio.methods.protocol.TrainingMethod), a trainer builder per
# training type, a CLI subcommand's register/run, and a process's entry point.
SHARED_ROLES: dict[str, str] = {
    "apply": "studio/methods/",
    "save": "studio/methods/",
    "load": "studio/methods/",
    "merge": "studio/methods/",
    "memory_plan": "studio/methods/",
    "peft_config": "studio/methods/",
    "model_class": "studio/methods/",
    "build_trainer": "studio/engine/",
    "register": "studio/commands/",
    "run": "studio/commands/",
}
ENTRY_POINTS = {"studio/cli.py", "studio/engine/rank.py"}


def public_definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(STUDIO.rglob("*.py")):
        relative = path.relative_to(STUDIO.parent).as_posix()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            definition = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            if isinstance(node, definition) and not node.name.startswith("_"):
                found[node.name].append(relative)
    return found


def test_no_two_modules_define_one_name_for_different_jobs() -> None:
    clashes = {}
    for name, modules in public_definitions().items():
        if len(modules) < 2:
            continue
        if name in SHARED_ROLES and all(m.startswith(SHARED_ROLES[name]) for m in modules):
            continue
        if name == "main" and set(modules) <= ENTRY_POINTS:
            continue
        clashes[name] = modules
    assert not clashes, (
        "one name, several modules: rename each by its job (or, for one role played by "
        f"several modules, list it in SHARED_ROLES): {clashes}"
    )


def test_every_top_level_room_is_in_the_readme_layout() -> None:
    readme = (STUDIO.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout") :]
    rooms = [
        path.name
        for path in sorted(STUDIO.iterdir())
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name not in {"__init__.py", "__main__.py"})
    ]
    missing = [room for room in rooms if room.removesuffix(".py") not in layout]
    assert not missing, f"README's Layout section does not name: {missing}"

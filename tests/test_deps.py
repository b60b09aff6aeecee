"""Every file a stage's script imports (transitively, inside ``src/``, lazy imports included) is
covered by that stage's ``deps`` in dvc.yaml, so DVC can never serve a result made by old code.

The closure is read from the source (``ast``), not by importing: an import inside a function
counts, since it runs when the stage does. A module that holds nothing but a docstring (an
empty package ``__init__``) cannot change a result and needs no dep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"
PACKAGE = "semantic_bridge"


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``a.b`` -> src/a/b.py or src/a/b/__init__.py)."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Names of the project modules ``path`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path) if path.is_relative_to(SRC) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # "from pkg import mod" imports the submodule pkg.mod
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))
    return found


def closure(script: Path) -> set[Path]:
    """Project files executed when ``script`` runs: its imports, theirs, and the package
    ``__init__`` files on the way."""
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                file = module_file(".".join(parts[:k]))
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def stages() -> dict[str, dict]:
    """dvc.yaml's stages, ``foreach`` stages by their template (deps with ``${...}`` dropped)."""
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_the_import_closure_of_its_script(name):
    stage = stages()[name]
    scripts = re.findall(r"stages/\w+\.py", stage["cmd"])
    assert len(scripts) == 1, f"{name}: expected one stages/*.py script in cmd"
    script = REPO / scripts[0]
    deps = [REPO / d for d in stage["deps"] if "${" not in d]
    assert script in deps, f"{name}: its script {scripts[0]} is not a dep"
    missing = sorted(str(f.relative_to(REPO)) for f in closure(script)
                     if has_code(f) and not any(f == d or d in f.parents for d in deps))
    assert not missing, f"{name}: deps miss files its script imports: {missing}"


def test_closure_follows_lazy_relative_and_submodule_imports(tmp_path):
    # the real tree: eval_wer imports asr lazily through the recogniser factory, and asr
    # imports models/nemo.py inside a function
    files = {str(f.relative_to(SRC)) for f in closure(REPO / "stages/eval_wer.py")}
    assert {"semantic_bridge/evaluate/asr.py", "semantic_bridge/models/nemo.py",
            "semantic_bridge/base/errors.py", "semantic_bridge/config.py"} <= files
    assert "semantic_bridge/corpus/espeak.py" not in files  # no stray dependency

"""The tree's rules, read off the source: which package may import which, where Ray may be
imported, and that the declared dependencies are what the code imports."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ser_ray"
# The adapters: every other file of ser_ray runs without Ray.
RAY_IMPORTERS = {
    "ser_ray/ray_session.py",
    "ser_ray/features/pipeline.py",
    "ser_ray/train/ray_train.py",
    "ser_ray/study/trial.py",
    "ser_ray/study/tune_run.py",
    "ser_ray/study/racing.py",  # a Tune scheduler
    "ser_ray/study/tune_replay.py",  # Tune's searcher and scheduler on recorded curves
    "ser_ray/study/cluster.py",  # nodes, the autoscaler's node types, the shared-path check
}
# Import names of distributions whose name differs.
IMPORT_NAMES = {"pyyaml": "yaml", "scikit-learn": "sklearn"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports, at any depth of its code (lazy imports included)."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found.add(base)
            # `from ser_ray import models` imports the module ser_ray.models.
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if f"{base}.{alias.name}" in modules()}
    return frozenset(found)


def internal(name: str) -> str | None:
    """The ser_ray module an import resolves to (its longest known prefix)."""
    parts = name.split(".")
    for length in range(len(parts), 0, -1):
        candidate = ".".join(parts[:length])
        if candidate in modules():
            return candidate
    return None


def unit(module: str) -> str:
    """The package (or top-level module) of ser_ray a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


def reached(start: Iterable[str]) -> set[str]:
    """Every import name reached from `start`, following ser_ray modules transitively."""
    seen: set[str] = set()
    pending = list(start)
    names: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in imports_of(module):
            names.add(name)
            target = internal(name)
            if target is not None:
                # Importing ser_ray.a.b runs ser_ray/__init__ and ser_ray/a/__init__ first.
                parents = [".".join(target.split(".")[:i])
                           for i in range(2, target.count(".") + 1)]
                pending += [target, *(p for p in parents if p in modules())]
    return names | seen


def in_package(names: Iterable[str], package: str) -> list[str]:
    return sorted(name for name in names if name == package or name.startswith(package + "."))


def package_modules(package: str) -> list[str]:
    return [name for name in modules() if unit(name) == package]


def test_report_imports_neither_study_train_ray_nor_torch_at_any_depth() -> None:
    seen = reached(package_modules("ser_ray.report"))
    for forbidden in ("ser_ray.study", "ser_ray.train", "ray", "torch"):
        assert not in_package(seen, forbidden), forbidden


def test_the_experiment_records_stand_below_every_stage() -> None:
    seen = reached(package_modules("ser_ray.experiment"))
    stages = ("corpus", "features", "models", "train", "study", "report", "synth", "bench")
    for forbidden in (*(f"ser_ray.{stage}" for stage in stages), "ray", "torch"):
        assert not in_package(seen, forbidden), forbidden


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ser_ray.models", "ser_ray.features"),
    ("ser_ray.features", "ser_ray.train"),
    ("ser_ray.features", "ser_ray.study"),
    ("ser_ray.train", "ser_ray.study"),
    ("ser_ray.train", "ser_ray.report"),
    ("ser_ray.study", "ser_ray.report"),
])
def test_a_stage_never_imports_a_later_one(package: str, forbidden: str) -> None:
    offenders = {module: in_package(imports_of(module), forbidden)
                 for module in package_modules(package)}
    assert not {module: names for module, names in offenders.items() if names}


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module in modules():
        if module == "ser_ray":
            continue
        targets = {unit(target) for target in map(internal, imports_of(module))
                   if target is not None and target != "ser_ray"}
        graph.setdefault(unit(module), set()).update(targets - {unit(module)})
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle between packages: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_only_the_adapter_files_import_ray() -> None:
    importers = {str(path.relative_to(ROOT)) for module, path in modules().items()
                 if in_package(imports_of(module), "ray")}
    assert importers == RAY_IMPORTERS


def third_party(names: Iterable[str]) -> set[str]:
    tops = {name.split(".")[0] for name in names}
    return {top for top in tops if top and top not in sys.stdlib_module_names
            and top not in ("ser_ray", "tests", "__future__")}


def declared(requirements: Iterable[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()  # type: ignore
        if name != "ser-ray":
            names.add(IMPORT_NAMES.get(name, name.replace("-", "_")))
    return names


@cache
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_runtime_dependencies_are_what_the_runtime_code_imports() -> None:
    runtime = [module for module in modules() if unit(module) != "ser_ray.bench"]
    imported = third_party(name for module in runtime for name in imports_of(module))
    extras = project()["optional-dependencies"]
    optional = declared(extras["export"])  # imported only when exporting to ONNX
    assert imported - optional == declared(project()["dependencies"])


def test_benchmark_and_test_dependencies_live_in_their_extras() -> None:
    extras = project()["optional-dependencies"]
    runtime = declared(project()["dependencies"])
    bench = third_party(name for module in package_modules("ser_ray.bench")
                        for name in imports_of(module))
    assert bench - runtime == declared(extras["bench"])
    tests = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tests |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tests.add(node.module or "")
    available = runtime | declared(extras["dev"]) | declared(extras["bench"]) \
        | declared(extras["export"])
    assert third_party(tests) - available == set()

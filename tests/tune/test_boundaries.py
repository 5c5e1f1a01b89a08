"""The tuning package's boundaries: Optuna's private names behind one seam, no import back into
the config, no test helpers in the product, no private names imported across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "trainwell"
SEAM = PACKAGE / "search" / "optuna_internals.py"
# private attributes of Optuna's objects that trainwell has needed (studies, trials, storages)
OPTUNA_PRIVATE_ATTRS = {
    "_storage",
    "_trial_id",
    "_study_id",
    "_get_trials",
    "_backend",
    "_cached_frozen_trial",
}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private_optuna_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "optuna" and any(p.startswith("_") for p in parts[1:])


def optuna_private_uses(path: Path) -> list[tuple[int, str]]:
    """(line, what) for each use of an Optuna private module or attribute in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if _is_private_optuna_module(a.name)
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna"):
            module = node.module or ""
            if _is_private_optuna_module(module):
                found.append((node.lineno, module))
            found += [
                (node.lineno, f"{module}.{a.name}") for a in node.names if a.name.startswith("_")
            ]
        elif isinstance(node, ast.Attribute) and node.attr in OPTUNA_PRIVATE_ATTRS:
            found.append((node.lineno, f".{node.attr}"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _is_private_optuna_module(node.value.strip())
            and " " not in node.value.strip()
        ):
            found.append((node.lineno, node.value))
    return found


def test_only_the_seam_touches_optunas_private_names():
    offenders = {
        str(path.relative_to(SRC)): uses
        for path in _sources()
        if path != SEAM and (uses := optuna_private_uses(path))
    }
    assert offenders == {}, f"Optuna's private names outside {SEAM.name}: {offenders}"
    # the detector sees what the seam does (so an empty result above means something)
    seen = {what for _, what in optuna_private_uses(SEAM)}
    assert {"._storage", "._trial_id", "optuna._gp", "optuna.storages._rdb"} <= seen


def test_each_private_use_in_the_seam_says_why():
    lines = SEAM.read_text(encoding="utf-8").splitlines()
    silent = []
    for lineno, what in optuna_private_uses(SEAM):
        window = lines[max(0, lineno - 4) : lineno]  # the line itself and the three above
        if not any("#" in line for line in window):
            silent.append((lineno, what))
    assert silent == [], f"uses without a comment saying why: {silent}"


def test_the_detector_catches_each_kind_of_private_use(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import optuna._gp.gp\n"
        "from optuna.storages._rdb import models\n"
        "from optuna.storages import _CachedStorage\n"
        "x = study._storage.get_trial(trial._trial_id)\n"
        "importlib.import_module('optuna._gp.acqf')\n"
    )
    assert sorted(line for line, _ in optuna_private_uses(probe)) == [1, 2, 3, 4, 4, 5]


def _imports(path: Path) -> set[str]:
    """The trainwell modules ``path`` imports, at the top or inside functions (not the imports
    only type checkers read)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] == "trainwell"}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _sources()}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return {
        m: {r for n in _imports(p) if (r := resolve(n)) is not None and r != m}
        for m, p in modules.items()
    }


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    return seen


def test_the_config_is_not_imported_back_by_the_sections_it_composes():
    # trainwell.config composes trainwell.search.config (which parses spaces with tune.space);
    # none of what it reaches may import trainwell.config again (a cycle across packages)
    graph = _graph()
    assert "trainwell.search.config" in graph["trainwell.config"]
    reached = _reachable(graph, "trainwell.config")
    back = sorted(m for m in reached if "trainwell.config" in graph[m])
    assert back == [], f"imported by trainwell.config and importing it back: {back}"


def test_no_module_swaps_its_class_to_be_callable():
    swaps = [
        f"{p.relative_to(SRC)}:{node.lineno}"
        for p in _sources()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr == "__class__"
        and isinstance(node.ctx, ast.Store)
    ]
    assert swaps == []


def test_test_helpers_are_not_in_the_product():
    assert not (PACKAGE / "tune" / "synthetic.py").exists()
    users = [str(p.relative_to(SRC)) for p in _sources() if "synthetic" in _imports(p)]
    users += [
        str(p.relative_to(SRC))
        for p in _sources()
        if any(n.endswith(".synthetic") or n == "synthetic" for n in _imports(p))
    ]
    assert users == []


@pytest.mark.parametrize(
    "path",
    [*sorted((PACKAGE / "tune").glob("*.py")), *sorted((PACKAGE / "search").glob("*.py"))]
    + [PACKAGE / "config.py", PACKAGE / "schema.py", PACKAGE / "registry.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_private_name_is_imported_from_another_module(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{a.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if a.name.startswith("_") and node.module != "__future__"
    ]
    assert private == []

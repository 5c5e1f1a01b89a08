"""The shape of the package: no import cycle between packages, no reach into another module's
private names, no module that swaps its ``__class__``.

The imports are read from the source (``ast``), function-level imports included: a lazy import
inside a function is still a dependency, it only waits until the function runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "trainwell"

# Imports of another module's private name that are part of a documented seam: (importer,
# "module.name") -> why. Empty: every module reaches others through their public names only.
PRIVATE_SEAMS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # the dotted name of the importing module
    target: str  # the dotted name of the imported module (or of the object's module)
    name: str | None  # for ``from target import name``: the name
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(module: str, path: Path, level: int, target: str | None) -> str:
    base = module.split(".") if _is_package(path) else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def _imports(module: str, path: Path, tree: ast.AST) -> list[Import]:
    """Every import of a trainwell module in ``tree``, wherever it sits in the file."""
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module
            if node.level:
                target = _resolve_relative(module, path, node.level, node.module)
            assert target is not None
            out += [Import(module, target, a.name, node.lineno) for a in node.names]
    return [i for i in out if i.target == ROOT or i.target.startswith(ROOT + ".")]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _all_imports() -> list[Import]:
    return [i for m, p in _modules().items() for i in _imports(m, p, _parse(p))]


def _dependency(imp: Import, modules: dict[str, Path]) -> str:
    """The module an import depends on: ``from trainwell import config`` means trainwell.config."""
    if imp.name is not None and f"{imp.target}.{imp.name}" in modules:
        return f"{imp.target}.{imp.name}"
    return imp.target


# The command line is one node: ``trainwell.cli`` loads each package's ``cli`` module, which adds
# that package's commands; together they are the outermost layer, which no other module imports.
COMMAND_MODULES = {"trainwell.cli", "trainwell.commands", "trainwell.__main__"}


def node_of(module: str) -> str:
    """The graph node of a module: its top-level package, a root module, or the command line.

    ``trainwell.train.trainer`` -> ``trainwell.train``; ``trainwell.config`` and
    ``trainwell.runs`` are nodes of their own; ``trainwell.train.cli`` -> ``trainwell.cli``.
    """
    parts = module.split(".")
    if module in COMMAND_MODULES or (len(parts) == 3 and parts[2] == "cli"):
        return "trainwell.cli"
    return ".".join(parts[:2])


Graph = dict[str, dict[str, list[Import]]]


def package_graph(imports: list[Import], modules: dict[str, Path]) -> Graph:
    """``graph[a][b]``: the imports by which node ``a`` depends on node ``b``."""
    graph: Graph = {node_of(m): {} for m in modules}
    for imp in imports:
        src, dst = node_of(imp.importer), node_of(_dependency(imp, modules))
        if src != dst and dst != ROOT:  # the root __init__ re-exports lazily; it imports nothing
            graph[src].setdefault(dst, []).append(imp)
    return graph


def import_cycles(graph: Graph) -> list[list[str]]:
    """The groups of nodes that import each other (strongly connected components of more than
    one node, by Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def shortest_cycle(group: list[str], graph: Graph) -> list[str]:
    """A shortest closed path from the group's first node back to it (breadth first)."""
    start, members = group[0], set(group)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(set(graph[v]) & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{group} is not a cycle")


def describe_cycle(group: list[str], graph: Graph, modules: dict[str, Path]) -> str:
    """The cycle, then every import between the group's nodes (each of them is on a cycle)."""
    lines = ["cycle: " + " -> ".join(shortest_cycle(group, graph))]
    for a in group:
        for b in sorted(set(graph[a]) & set(group)):
            lines.append(f"  {a} -> {b}:")
            for imp in graph[a][b]:
                rel = modules[imp.importer].relative_to(SRC.parent)
                what = f"import {imp.target}"
                if imp.name:
                    what = f"from {imp.target} import {imp.name}"
                lines.append(f"    {rel}:{imp.line}: {what}")
    return "\n".join(lines)


def test_no_import_cycle_between_packages():
    modules = _modules()
    graph = package_graph(_all_imports(), modules)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles between packages:\n" + "\n".join(
        describe_cycle(c, graph, modules) for c in cycles)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class PrivateUse:
    line: int
    name: str  # the dotted name used: trainwell.train.trainer._helper
    code: str  # how the source spells it


def private_name_uses(module: str, path: Path, tree: ast.Module,
                      modules: dict[str, Path]) -> list[PrivateUse]:
    """``from trainwell.x import _y`` and ``x._y`` (``x`` an imported trainwell module), where
    ``_y`` is not itself a module: a private module is its package's own to import."""
    found = []
    bound: dict[str, str] = {}  # local name -> the trainwell module it is bound to
    for imp in _imports(module, path, tree):
        dep = _dependency(imp, modules)
        if imp.name is None:
            continue
        if dep != imp.target:
            bound[imp.name] = dep
        elif _private(imp.name) and dep != module:
            found.append(PrivateUse(imp.line, f"{imp.target}.{imp.name}",
                                    f"from {imp.target} import {imp.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name.startswith(ROOT + "."):
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        owner = bound.get(node.value.id)
        name = f"{owner}.{node.attr}"
        if owner and owner != module and _private(node.attr) and name not in modules:
            found.append(PrivateUse(node.lineno, name, f"{node.value.id}.{node.attr}"))
    return sorted(found, key=lambda u: u.line)


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    bad = [f"{path.relative_to(SRC.parent)}:{use.line}: {use.code}"
           for module, path in modules.items()
           for use in private_name_uses(module, path, _parse(path), modules)
           if (module, use.name) not in PRIVATE_SEAMS]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def class_assignments(tree: ast.Module) -> list[int]:
    """Lines that assign an object's ``__class__`` (``x.__class__ = ...`` or ``setattr``)."""
    lines = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "setattr" and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value == "__class__"):
            lines.append(node.lineno)
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and sub.attr == "__class__":
                    lines.append(node.lineno)
    return sorted(set(lines))


def test_no_module_assigns_a_class_to_an_object():
    bad = [f"{p.relative_to(SRC.parent)}:{line}" for p in _modules().values()
           for line in class_assignments(_parse(p))]
    assert not bad, "__class__ assigned (make a plain function or class instead):\n" + "\n".join(
        bad)


# Process-wide state that only the command may change (tests/test_process_edge.py checks the
# same at run time): module -> the functions of it that change it.
PROCESS_STATE = {
    "gc": {"disable", "enable", "freeze", "unfreeze", "set_threshold"},
    "os": {"umask", "_exit"},
    "atexit": {"register", "unregister", "_run_exitfuncs"},
}
COMMAND_EDGE = "trainwell.cli"


def process_state_uses(tree: ast.Module) -> list[str]:
    """``gc.disable``, ``os.umask``, ``atexit.register``... however the module was imported."""
    local: dict[str, str] = {}  # local name -> "gc" / "gc.disable"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in PROCESS_STATE:
                    local[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module in PROCESS_STATE and not node.level:
            for a in node.names:
                if a.name in PROCESS_STATE[node.module]:
                    local[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and local.get(node.value.id) in PROCESS_STATE
                and node.attr in PROCESS_STATE[local[node.value.id]]):
            found.append(f"{node.lineno}: {local[node.value.id]}.{node.attr}")
        elif isinstance(node, ast.Name) and "." in local.get(node.id, "") and isinstance(
                node.ctx, ast.Load):
            found.append(f"{node.lineno}: {local[node.id]}")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_only_the_command_edge_changes_process_state():
    bad = [f"{p.relative_to(SRC.parent)}:{use}" for m, p in _modules().items()
           if m != COMMAND_EDGE for use in process_state_uses(_parse(p))]
    assert not bad, ("the garbage collector, the umask and atexit are the program's: only "
                     f"{COMMAND_EDGE} may change them\n" + "\n".join(bad))


@pytest.mark.parametrize(("source", "found"), [
    ("import gc\ngc.disable()\ngc.collect()\n", ["2: gc.disable"]),
    ("import os as o\nold = o.umask(0)\n", ["2: os.umask"]),
    ("from atexit import register as on_exit\non_exit(print)\n", ["2: atexit.register"]),
    ("from gc import freeze\ndef f():\n    freeze()\n", ["3: gc.freeze"]),
    ("import os\nos.getpid()\ngc = 1\ngc.disable\n", []),
])
def test_process_state_check(source, found):
    assert process_state_uses(ast.parse(source)) == found


# The checks themselves, on small sources: each must catch what it is meant to catch.

def _graph_of(sources: dict[str, str]) -> tuple[Graph, dict[str, Path]]:
    modules = {m: SRC / (m.replace(".", "/") + ".py") for m in sources}
    imports = [i for m, s in sources.items() for i in _imports(m, modules[m], ast.parse(s))]
    return package_graph(imports, modules), modules


def test_a_function_level_import_closes_a_cycle_and_is_named():
    graph, modules = _graph_of({
        "trainwell.config": "def f():\n    from trainwell.tune.space import parse\n",
        "trainwell.tune.space": "from trainwell.config import Config\n",
        "trainwell.train.trainer": "from trainwell import config\n",
    })
    assert import_cycles(graph) == [["trainwell.config", "trainwell.tune"]]
    text = describe_cycle(["trainwell.config", "trainwell.tune"], graph, modules)
    assert text.startswith("cycle: trainwell.config -> trainwell.tune -> trainwell.config\n")
    assert "src/trainwell/config.py:2: from trainwell.tune.space import parse" in text
    assert "src/trainwell/tune/space.py:1: from trainwell.config import Config" in text


def test_imports_within_one_package_and_chains_without_a_loop_are_not_cycles():
    graph, _ = _graph_of({
        "trainwell.train.a": "from trainwell.train import b\nfrom trainwell.nn import x\n",
        "trainwell.train.b": "from . import a\n",
        "trainwell.nn.x": "from trainwell.config import C\nimport trainwell.errors\n",
        "trainwell.config": "from .errors import E\n",
        "trainwell.errors": "",
    })
    assert import_cycles(graph) == []
    assert set(graph["trainwell.config"]) == {"trainwell.errors"}  # a relative import resolved


def test_a_longer_cycle_is_found_and_commands_are_one_node():
    graph, modules = _graph_of({
        "trainwell.data.a": "import trainwell.nn.b\n",
        "trainwell.nn.b": "from trainwell.train.c import run\n",
        "trainwell.train.c": "from ..data import a\n",
        "trainwell.train.cli": "from trainwell.cli import add\nfrom trainwell.train import c\n",
        "trainwell.cli": "import trainwell.data.a\n",
    })
    (group,) = import_cycles(graph)
    assert group == ["trainwell.data", "trainwell.nn", "trainwell.train"]
    assert shortest_cycle(group, graph) == [*group, "trainwell.data"]
    assert "trainwell.train.cli" not in graph and set(graph["trainwell.cli"]) == {
        "trainwell.data", "trainwell.train"}
    graph, _ = _graph_of({"trainwell.train.trainer": "from trainwell.train.cli import x\n",
                          "trainwell.train.cli": "from trainwell.train import trainer\n"})
    assert import_cycles(graph) == [["trainwell.cli", "trainwell.train"]]


@pytest.mark.parametrize(("source", "expected"), [
    ("from trainwell.train.trainer import _helper\n", [1]),
    ("def f():\n    from trainwell.train import trainer\n    return trainer._helper()\n", [3]),
    ("import trainwell.train.trainer as t\nt._helper\n", [2]),
    ("from trainwell import _lazy\nfrom trainwell._lazy import lazy_getattr\n", []),
    ("from trainwell.train.trainer import Trainer\nTrainer._step\n", []),  # not a module
    ("from trainwell.train.trainer import __all__\n", []),
])
def test_private_name_check(source, expected):
    modules = {m: SRC / (m.replace(".", "/") + ".py")
               for m in ("trainwell.api", "trainwell._lazy", "trainwell.train.trainer")}
    modules["trainwell.train"] = SRC / "trainwell/train/__init__.py"
    uses = private_name_uses("trainwell.api", modules["trainwell.api"], ast.parse(source), modules)
    assert [u.line for u in uses] == expected
    assert all(u.name == "trainwell.train.trainer._helper" for u in uses)


@pytest.mark.parametrize(("source", "lines"), [
    ("import sys\nsys.modules[__name__].__class__ = type\n", [2]),
    ("setattr(obj, '__class__', Other)\n", [1]),
    ("x.__class__: type = T\n", [1]),
    ("print(x.__class__)\ny = x.__class__\n", []),
])
def test_class_assignment_check(source, lines):
    assert class_assignments(ast.parse(source)) == lines


def _recipe(makefile: str, target: str) -> list[str]:
    """The command lines of ``target``'s recipe (tab-indented lines after ``target:``)."""
    lines = makefile.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_ci_runs_lint_and_types_before_the_suite():
    """``.ci/run`` is ``make test``, whose stages are ruff, mypy, the system packages, pytest."""
    root = SRC.parent
    assert "\nmake test\n" in (root / ".ci" / "run").read_text()
    commands = [c for c in _recipe((root / "Makefile").read_text(), "test")
                if not c.startswith("@echo")]
    assert [c.split()[:2] for c in commands] == [
        ["$(VENV)/bin/ruff", "check"], ["$(VENV)/bin/mypy"], ["$(PY)", "tests/sysdeps.py"],
        ["$(PY)", "-m"]]
    assert commands[-1].startswith("$(PY) -m pytest")
    assert not any(c.startswith("-") for c in commands)  # a failure is never ignored

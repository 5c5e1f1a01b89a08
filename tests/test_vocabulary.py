"""One home per concept: the task vocabulary, metric direction, losses, the run name.

These walk the source: a second copy of a concept (a local task list, a metric-direction
helper, a loss table, a run-name builder) fails here, naming the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trainwell"
MODULES = sorted(SRC.rglob("*.py"))

# a concept -> the one module allowed to define functions of these names
HOMES = {
    "tasks.py": {
        "infer_task",
        "infer_task_from_labels",
        "higher_is_better",
        "metric_mode",
        "metric_direction",
        "resolve_direction",
        "_metric_mode",
        "check_task",
    },
    "train/losses.py": {
        "make_loss",
        "check_loss_for_task",
        "chance_loss",
        "l1_loss",
        "l2_loss",
        "bce_loss",
        "cross_entropy_loss",
        "hinge_loss",
        "huber_loss",
    },
    "runs.py": {"default_run_name", "_default_name", "default_name"},
    "train/calibration.py": {"expected_calibration_error", "reliability_bins"},
    "train/metric_registry.py": {"resolve_metrics", "list_metrics", "check_metric_name"},
}


def _defs(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


@pytest.mark.parametrize("home", sorted(HOMES))
def test_each_concept_is_defined_in_its_home_only(home):
    names = HOMES[home]
    strays = []
    for path in MODULES:
        rel = path.relative_to(SRC).as_posix()
        if rel == home:
            continue
        found = _defs(path) & names
        strays += [f"{rel}: {name}" for name in sorted(found)]
    assert not strays, f"defined outside {home}: {strays}"


def test_no_module_but_tasks_spells_out_the_task_list():
    tasks = {"binary", "multiclass", "regression"}
    strays = []
    for path in MODULES:
        rel = path.relative_to(SRC).as_posix()
        if rel == "tasks.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if values >= tasks:
                    strays.append(f"{rel}:{node.lineno}")
    assert not strays, f"task lists outside tasks.py: {strays}"


def test_the_trainer_and_the_doctor_share_the_loss_registry():
    from trainwell.train.losses import LOSSES, list_losses

    assert list_losses() == LOSSES.names()
    # a loss name is registered once: every alias maps to one canonical name
    for name in LOSSES.names(aliases=True):
        assert LOSSES.canonical(name) in list_losses()

"""``benchmarks/after.py --quick`` runs and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "after.py"


@pytest.mark.slow
def test_quick_benchmark_prints_the_ensembles_table(runs_dir, capsys):
    spec = importlib.util.spec_from_file_location("after_benchmark", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick", "--hidden", "16"])
    text = capsys.readouterr().out
    assert "3-member ensemble" in text and "snapshot ensemble (3)" in text
    rows = out["per_seed"][0]
    # the log-loss of the mean of probabilities is at most the mean of the members' (Jensen)
    assert rows["3-member ensemble"]["log_loss"] <= rows["members' mean"]["log_loss"] + 1e-12
    for scores in rows.values():
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["ece"] <= 1.0

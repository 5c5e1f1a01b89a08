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
    assert [name for name, _ in module.WEIGHT_AVERAGING] == ["EMA", "SWA"]
    # a row without averaging is the single model itself: the single-run scoring path agrees
    # with the ensemble's, so the EMA and SWA rows differ from it by their averaging alone
    module.WEIGHT_AVERAGING.append(("no averaging", {"average": "none"}))
    out = module.main(["--quick", "--hidden", "16"])
    text = capsys.readouterr().out
    for name in ("3-member ensemble", "snapshot ensemble (3)", "EMA", "SWA",
                 "single model, 3x epochs", "snapshot ensemble (3), 3x epochs"):
        assert f"\n{name} " in text
    rows = out["per_seed"][0]
    assert rows["no averaging"] == rows["single model"]
    for name in ("EMA", "SWA"):
        assert rows[name]["log_loss"] != rows["single model"]["log_loss"]
    # total epochs: 6 per model; the ensemble and its two rivals at 3 times that
    epochs = {name: scores["epochs"] for name, scores in rows.items()}
    assert epochs == {"single model": 6, "snapshot ensemble (3)": 6, "EMA": 6, "SWA": 6,
                      "no averaging": 6, "members' mean": 6, "3-member ensemble": 18,
                      "single model, 3x epochs": 18, "snapshot ensemble (3), 3x epochs": 18}
    assert "| epochs |" in text and "|     18 |" in text
    # the log-loss of the mean of probabilities is at most the mean of the members' (Jensen)
    assert rows["3-member ensemble"]["log_loss"] <= rows["members' mean"]["log_loss"] + 1e-12
    # more training of the same model lowers the (best-val) test log-loss here
    assert rows["single model, 3x epochs"]["log_loss"] < rows["single model"]["log_loss"]
    for scores in rows.values():
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["ece"] <= 1.0

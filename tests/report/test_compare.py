"""Comparing real runs: overlaid curves, config differences, results side by side."""

from __future__ import annotations

import json
import tomllib

import pytest
from reporthelp import Page, assert_self_contained

from trainwell.errors import RunError
from trainwell.report import write_comparison
from trainwell.report.html import fmt


def test_comparison_overlays_curves_and_tabulates_differences(iris_run, iris_run_fast, tmp_path):
    page = Page(write_comparison([iris_run, iris_run_fast], tmp_path / "cmp.html"))
    assert page.sections == ["results", "curves", "config"]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert f"fig-overlay-{key}" in page.figures
    assert_self_contained(page)
    diff = page.table_with("config key")
    assert diff[0] == ["config key", "iris", "iris-fast"]
    assert [r[0] for r in diff[1:]] == ["train.optimizer.lr"]  # the only difference
    lrs = [tomllib.loads((r / "config.toml").read_text())["train"]["optimizer"].get("lr")
           for r in (iris_run, iris_run_fast)]
    assert diff[1][1:] == [fmt(v) for v in lrs] and lrs[1] == 0.01
    results = page.table_with("best epoch")
    for row, run in zip(results[1:], (iris_run, iris_run_fast), strict=True):
        best = json.loads((run / "results.json").read_text())["best"]
        col = results[0].index("val_loss (best)")
        assert float(row[col]) == pytest.approx(best["val_loss"], rel=1e-3)


def test_comparison_needs_two_runs(iris_run, tmp_path):
    with pytest.raises(RunError, match="at least 2 run directories; got 1"):
        write_comparison([iris_run], tmp_path / "x.html")


def test_comparison_regenerates_byte_for_byte(iris_run, iris_run_fast, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = write_comparison([iris_run, iris_run_fast], tmp_path / "a.html").read_bytes()
    b = write_comparison([iris_run, iris_run_fast], tmp_path / "b.html").read_bytes()
    assert a == b

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
    assert page.sections == ["runs", "curves"]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert f"fig-overlay-{key}" in page.figures
    assert_self_contained(page, scripts=1)  # the column filters, inline
    table = page.table_with("train.optimizer.lr")
    header, boxes, rows = table[0], table[1], table[2:]
    # the only config difference, between the status and the results
    assert header[:4] == ["run", "status", "train.optimizer.lr", "best epoch"]
    assert boxes == [""] * len(header)  # a filter box above each column
    assert page.text.count('<input class="filter"') == len(header)
    assert [r[0] for r in rows] == ["iris", "iris-fast"]
    lrs = [tomllib.loads((r / "config.toml").read_text())["train"]["optimizer"].get("lr")
           for r in (iris_run, iris_run_fast)]
    assert [r[2] for r in rows] == ["default" if v is None else fmt(v) for v in lrs]
    assert lrs == [None, 0.01]  # iris leaves the learning rate to its default
    for row, run in zip(rows, (iris_run, iris_run_fast), strict=True):
        results = json.loads((run / "results.json").read_text())
        assert float(row[header.index("val_loss (best)")]) == pytest.approx(
            results["best"]["val_loss"], rel=1e-3)
        assert float(row[header.index("val_loss (final)")]) == pytest.approx(
            results["final"]["val_loss"], rel=1e-3)
    assert "training wall time" in header and "it leaves out imports" in page.text


def test_comparison_of_identical_configs_says_so(iris_run, copy_run, tmp_path):
    twin = copy_run(iris_run)
    page = Page(write_comparison([iris_run, twin], tmp_path / "same.html"))
    assert "configs are identical" in page.text
    assert page.table_with("best epoch")[0][:3] == ["run", "status", "best epoch"]


def test_comparison_needs_two_runs(iris_run, tmp_path):
    with pytest.raises(RunError, match="at least 2 run directories; got 1"):
        write_comparison([iris_run], tmp_path / "x.html")


def test_comparison_regenerates_byte_for_byte(iris_run, iris_run_fast, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = write_comparison([iris_run, iris_run_fast], tmp_path / "a.html").read_bytes()
    b = write_comparison([iris_run, iris_run_fast], tmp_path / "b.html").read_bytes()
    assert a == b

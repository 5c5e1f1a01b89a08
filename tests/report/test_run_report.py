"""report.html of real runs: every section and figure, numbers from the run, regeneration."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, recall_score

from trainwell.errors import RunError
from trainwell.report import write_run_report

from reporthelp import Page, assert_self_contained, fit_run

RUN_SECTIONS = ["summary", "curves", "lr", "layers", "doctor", "predictions", "config"]
STAMP = re.compile(r'<time id="generated">[^<]*</time>')


def test_run_report_has_every_section_and_figure(iris_report):
    page = Page(iris_report)
    assert page.sections == RUN_SECTIONS
    for fig in ("fig-loss", "fig-metric-accuracy", "fig-lr", "fig-confusion",
                "fig-layers-act_std", "fig-layers-grad_norm", "fig-epochs-grad_norm"):
        assert fig in page.figures
    assert len(page.images) == len(page.figures)
    assert_self_contained(page)
    assert "is absent" not in page.text
    # a ReLU network never saturates (stats.py): a sentence instead of an empty plot
    assert "fig-layers-sat_frac" not in page.figures
    assert "saturated fraction: 0 in every layer" in page.text


def test_results_table_shows_results_json(iris_run, iris_report):
    results = json.loads((iris_run / "results.json").read_text())
    page = Page(iris_report)
    rows = {r[0]: r[1:] for r in page.table_with("final")}
    assert float(rows["val_loss"][0]) == pytest.approx(results["best"]["val_loss"], rel=1e-3)
    assert float(rows["val_loss"][1]) == pytest.approx(results["final"]["val_loss"], rel=1e-3)
    assert f"{results['n_params']:,}" in page.text


def test_per_class_recall_matches_sklearn(iris_run, iris_report):
    npz = np.load(iris_run / "predictions.npz", allow_pickle=False)
    recall = recall_score(npz["y_true"], npz["y_pred"], average=None, labels=[0, 1, 2],
                          zero_division=0)
    page = Page(iris_report)
    rows = page.table_with("recall")[1:]
    classes = json.loads((iris_run / "data.json").read_text())["classes"]
    assert [r[0] for r in rows] == [str(c) for c in classes]
    assert [int(r[1]) for r in rows] == np.bincount(npz["y_true"], minlength=3).tolist()
    np.testing.assert_allclose([float(r[2]) for r in rows], recall, atol=5e-4)


def test_regression_run_gets_residual_plot(runs_root):
    run = fit_run(runs_root, "diabetes", data="builtin:diabetes", monitor=False)
    page = Page(write_run_report(run))
    assert {"fig-truth", "fig-residuals"} <= set(page.figures)
    assert "fig-confusion" not in page.figures
    npz = np.load(run / "predictions.npz", allow_pickle=False)
    mae = mean_absolute_error(npz["y_true"].reshape(-1), npz["y_pred"].reshape(-1))
    row = page.table_with("MAE")[1]
    assert float(row[1]) == pytest.approx(mae, rel=1e-3)


def test_report_regenerates_byte_for_byte_apart_from_the_timestamp(iris_run, iris_report,
                                                                  monkeypatch):
    first = iris_report.read_text(encoding="utf-8")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # pins the one timestamp
    again = write_run_report(iris_run).read_text(encoding="utf-8")
    assert '<time id="generated">2023-11-14T22:13:20+00:00</time>' in again
    assert len(STAMP.findall(first)) == 1
    assert STAMP.sub("", first) == STAMP.sub("", again)


def test_run_without_doctor_stats_or_predictions_still_gets_a_report(iris_run, copy_run):
    run = copy_run(iris_run, drop=("doctor.json", "stats.jsonl", "predictions.npz"))
    page = Page(write_run_report(run))
    assert page.sections == RUN_SECTIONS
    assert "doctor.json is absent" in page.text
    assert "stats.jsonl is absent" in page.text
    assert "predictions.npz is absent" in page.text
    assert "fig-loss" in page.figures and not any(f.startswith("fig-layers") for f in page.figures)


def test_torn_metrics_line_and_missing_results_are_tolerated(iris_run, copy_run):
    run = copy_run(iris_run, drop=("results.json",))
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 4, "train_lo')  # a killed process
    page = Page(write_run_report(run))
    assert "results.json is absent" in page.text and "fig-loss" in page.figures


def test_not_a_run_directory_is_refused(tmp_path):
    with pytest.raises(RunError, match="is not a run directory"):
        write_run_report(tmp_path)
    with pytest.raises(RunError, match="does not exist"):
        write_run_report(tmp_path / "nope")


def test_diverged_run_gets_a_report_that_says_what_is_missing(runs_root):
    from trainwell.errors import DivergenceError

    with pytest.raises(DivergenceError):
        fit_run(runs_root, "diverged", ["train.optimizer.name=sgd", "train.optimizer.lr=1e6"])
    run = runs_root / "diverged"
    page = Page(write_run_report(run))
    assert page.sections == RUN_SECTIONS
    assert "multiclass · diverged" in page.text
    rows = dict(r for r in page.tables[0] if len(r) == 2)
    assert rows["status"] == "diverged" and rows["diverged"] == "yes"
    assert "no epoch finished" in page.text

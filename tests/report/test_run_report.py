"""report.html of real runs: every section and figure, numbers from the run, regeneration."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from reporthelp import Page, assert_self_contained, fit_run
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

from trainwell.errors import RunError
from trainwell.report import write_run_report

RUN_SECTIONS = ["summary", "curves", "lr", "layers", "doctor", "predictions", "worst", "config"]
STAMP = re.compile(r'<time id="generated">[^<]*</time>')


def test_run_report_has_every_section_and_figure(iris_report):
    page = Page(iris_report)
    assert page.sections == RUN_SECTIONS
    assert page.figures == ["fig-curves", "fig-lr", "fig-layers", "fig-epochs", "fig-confusion",
                            "fig-roc", "fig-pr"]
    assert len(page.images) >= len(page.figures)
    assert_self_contained(page)
    assert "is absent" not in page.text
    # one panel per metric, per layer statistic, per statistic during training
    assert page.captions["fig-curves"].startswith("Loss, accuracy, f1_macro per epoch")
    # one image per panel (loss, accuracy, f1_macro): side by side on a wide screen, stacked
    # on a phone
    curves = re.search(r'<figure id="fig-curves" class="wide"><div class="panels">(.*?)</div>',
                       page.text)
    assert curves is not None and curves.group(1).count("<img ") == 3
    for stat in ("activation std", "gradient norm", "update / weight ratio"):
        assert stat in page.captions["fig-layers"]
    assert "gradient norm" in page.captions["fig-epochs"]
    # a ReLU network never saturates (stats.py): a sentence instead of an empty panel
    assert "saturated" not in page.captions["fig-layers"]
    assert "saturated fraction: 0 in every layer" in page.text


def test_results_table_shows_results_json(iris_run, iris_report):
    results = json.loads((iris_run / "results.json").read_text())
    page = Page(iris_report)
    rows = {r[0]: r[1:] for r in page.table_with("final")}
    assert float(rows["val_loss"][0]) == pytest.approx(results["best"]["val_loss"], rel=1e-3)
    assert float(rows["val_loss"][1]) == pytest.approx(results["final"]["val_loss"], rel=1e-3)
    assert f"{results['n_params']:,}" in page.text


def test_summary_shows_the_machine_and_parameter_count(iris_run, iris_report):
    meta = json.loads((iris_run / "meta.json").read_text())
    n_params = json.loads((iris_run / "results.json").read_text())["n_params"]
    import torch

    assert n_params == sum(p.numel() for p in _iris_model(iris_run).parameters())
    rows = {r[0]: r[1] for t in Page(iris_report).tables for r in t if len(r) == 2}
    assert rows["parameters"] == f"{n_params:,}"
    for key in ("platform", "device", "python", "torch"):
        assert rows[key] == str(meta[key])
    assert meta["torch"] == torch.__version__


def _iris_model(run):  # noqa: ANN001, ANN202 - the run's model, rebuilt from its config
    from trainwell.api import load

    return load(run).model


def test_layer_statistics_at_init_and_end_match_doctor_json(iris_run, iris_report):
    acts = json.loads((iris_run / "doctor.json").read_text())["activation_stats"]
    page = Page(iris_report)
    table = page.table_with("statistic")
    assert table[0] == ["layer", "statistic", "init", "end"]
    rows = {(r[0], r[1]): r[2:] for r in table[1:]}
    for label, col in (("init", 0), ("end", 1)):
        layers = acts[label].get("layers", acts[label])
        assert layers, label
        for layer, stats in layers.items():
            assert float(rows[(layer, "activation std")][col]) == pytest.approx(
                stats["act_std"], rel=1e-3, abs=1e-6)
            assert float(rows[(layer, "gradient norm")][col]) == pytest.approx(
                stats["grad_norm"], rel=1e-3, abs=1e-6)


@pytest.fixture(scope="module")
def diverged_run(runs_root):
    from trainwell.errors import DivergenceError

    with pytest.raises(DivergenceError):
        fit_run(runs_root, "diverged", ["train.optimizer.name=sgd", "train.optimizer.lr=1e6"])
    return runs_root / "diverged"


@pytest.mark.parametrize("which", ["iris", "diverged"])
def test_doctor_findings_are_shown_with_their_advice(which, iris_run, diverged_run):
    import html

    run = iris_run if which == "iris" else diverged_run
    findings = json.loads((run / "doctor.json").read_text())["findings"]
    assert findings
    if which == "diverged":
        assert any(f["status"] == "fail" and f.get("advice") for f in findings)
    text = html.unescape(Page(run / "report.html").text)
    for f in findings:
        assert f'<span class="badge {f["status"]}">{f["status"]}</span> {f["title"]}' in text
        for advice in f.get("advice", []):
            assert f"<li>{advice}</li>" in text


def test_log_report_false_writes_no_report(runs_root):
    run = fit_run(runs_root, "iris-noreport", monitor=False, report=False)
    assert (run / "results.json").is_file() and not (run / "report.html").exists()


def test_per_class_table_matches_sklearn(iris_run, iris_report):
    """Precision, recall, F1, support and one-vs-rest ROC-AUC / average precision per class,
    against sklearn on predictions.npz."""
    npz = np.load(iris_run / "predictions.npz", allow_pickle=False)
    y, pred, proba = npz["y_true"], npz["y_pred"], npz["proba"]
    page = Page(iris_report)
    table = page.table_with("recall")
    assert table[0] == ["class", "precision", "recall", "F1", "support", "ROC-AUC",
                        "average precision"]
    rows = table[1:]
    classes = json.loads((iris_run / "data.json").read_text())["classes"]
    assert [r[0] for r in rows] == [str(c) for c in classes]
    for col, score in ((1, precision_score), (2, recall_score), (3, f1_score)):
        expected = score(y, pred, average=None, labels=[0, 1, 2], zero_division=0)
        np.testing.assert_allclose([float(r[col]) for r in rows], expected, atol=5e-4)
    assert [int(r[4]) for r in rows] == np.bincount(y, minlength=3).tolist()
    auc = [roc_auc_score(y == k, proba[:, k]) for k in range(3)]
    ap = [average_precision_score(y == k, proba[:, k]) for k in range(3)]
    np.testing.assert_allclose([float(r[5]) for r in rows], auc, atol=5e-4)
    np.testing.assert_allclose([float(r[6]) for r in rows], ap, atol=5e-4)
    assert "each class against the rest" in page.captions["fig-roc"]


def test_regression_run_gets_residual_plot(runs_root):
    run = fit_run(runs_root, "diabetes", data="builtin:diabetes", monitor=False)
    page = Page(run / "report.html")  # written by fit itself
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
    assert "fig-curves" in page.figures
    assert not any(f.startswith("fig-layers") for f in page.figures)


def test_torn_metrics_line_and_missing_results_are_tolerated(iris_run, copy_run):
    run = copy_run(iris_run, drop=("results.json",))
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 4, "train_lo')  # a killed process
    page = Page(write_run_report(run))
    assert "results.json is absent" in page.text and "fig-curves" in page.figures


def test_not_a_run_directory_is_refused(tmp_path):
    with pytest.raises(RunError, match="is not a run directory"):
        write_run_report(tmp_path)
    with pytest.raises(RunError, match="does not exist"):
        write_run_report(tmp_path / "nope")


def test_diverged_run_gets_a_report_that_says_what_is_missing(diverged_run):
    run = diverged_run
    page = Page(run / "report.html")  # fit writes the report of a diverged run too
    assert page.sections == RUN_SECTIONS
    assert "multiclass · diverged" in page.text
    rows = dict(r for r in page.tables[0] if len(r) == 2)
    assert rows["status"] == "diverged" and rows["diverged"] == "yes"
    assert "no epoch finished" in page.text

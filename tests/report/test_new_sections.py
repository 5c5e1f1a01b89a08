"""The worst test examples (rows and images), ROC / PR of a binary run, the comparison's column
filters in a real browser, and study figures on log axes when two trials are 1000x worse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reporthelp import Page

from trainwell.report import write_comparison
from trainwell.report.examples import FILE, TOP_K, per_sample_loss
from trainwell.report.run_report import predictions_section, worst_section
from trainwell.report.rundata import load_run


def cross_entropy(run) -> np.ndarray:
    """The oracle: -log p(true class) of every test sample, from predictions.npz."""
    with np.load(run / "predictions.npz", allow_pickle=False) as npz:
        proba, y = npz["proba"].astype(np.float64), npz["y_true"]
    return -np.log(proba[np.arange(len(y)), y])


def test_worst_rows_are_the_largest_cross_entropies(iris_run, iris_report):
    loss = cross_entropy(iris_run)
    order = np.argsort(-loss, kind="stable")[:TOP_K]
    with np.load(iris_run / FILE, allow_pickle=False) as npz:
        saved = {k: npz[k] for k in npz.files}
    np.testing.assert_array_equal(saved["index"], order)
    np.testing.assert_allclose(saved["loss"], loss[order], rtol=1e-6)
    assert saved["x"].shape == (TOP_K, 4)  # iris: 4 features per row
    table = Page(iris_report).table_with("p(true)")
    features = json.loads((iris_run / "data.json").read_text())["feature_names"]
    assert table[0] == ["rank", "source row", "loss", "true", "predicted", "p(true)", *features]
    rows = table[1:]
    assert [int(r[0]) for r in rows] == list(range(1, TOP_K + 1))
    np.testing.assert_allclose([float(r[2]) for r in rows], loss[order], rtol=1e-3)
    np.testing.assert_allclose([float(r[5]) for r in rows], np.exp(-loss[order]), rtol=1e-3)
    assert [int(r[1]) for r in rows] == saved["row"].tolist()
    np.testing.assert_allclose([float(r[6]) for r in rows], saved["x"][:, 0], rtol=1e-3)


def test_per_sample_loss_of_a_regression_is_the_mean_squared_error():
    arrays = {"y_true": np.array([[1.0, 2.0], [0.0, 0.0]]),
              "y_pred": np.array([[2.0, 4.0], [0.0, 3.0]])}
    np.testing.assert_allclose(per_sample_loss(arrays, "regression"), [2.5, 4.5])


@pytest.fixture(scope="module")
def image_run(runs_root):
    from trainwell.api import fit

    cfg = {"data": {"source": "builtin:digits_images"}, "model": {"arch": "cnn"},
           "train": {"epochs": 1, "batch_size": 64}, "runs_dir": str(runs_root),
           "doctor": {"enabled": False, "monitor": False}, "log": {"report_every": 0}}
    fit(cfg, name="digits-images", quiet=True)
    return runs_root / "digits-images"


@pytest.mark.slow
def test_worst_images_are_the_test_images_with_the_largest_loss(image_run):
    from trainwell.data import prepare
    from trainwell.data.config import DataConfig

    loss = cross_entropy(image_run)
    order = np.argsort(-loss, kind="stable")[:TOP_K]
    with np.load(image_run / FILE, allow_pickle=False) as npz:
        index, x = npz["index"], npz["x"]
    np.testing.assert_array_equal(index, order)
    test = prepare(DataConfig(source="builtin:digits_images"), seed=0).test
    np.testing.assert_array_equal(x, test.X[torch_index(order)].numpy())
    page = Page(image_run / "report.html")
    assert "fig-worst" in page.figures and "true and predicted labels" in page.captions["fig-worst"]


def torch_index(order: np.ndarray):
    import torch

    return torch.as_tensor(order, dtype=torch.long)


def section_page(run, tmp_path, *sections) -> Page:
    """Only the given sections of a run's report, as a page (a whole report draws every
    figure)."""
    data = load_run(run)
    out = tmp_path / "sections.html"
    out.write_text("".join(f(data) for f in sections), encoding="utf-8")
    return Page(out)


def test_binary_run_gets_the_roc_and_pr_of_its_positive_class(iris_run, copy_run, tmp_path):
    """Iris as "virginica or not": the report's AUC and average precision are sklearn's."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    run = copy_run(iris_run, drop=(FILE,))
    with np.load(run / "predictions.npz", allow_pickle=False) as npz:
        y = (npz["y_true"] == 2).astype(np.int64)
        p = npz["proba"][:, 2]
    np.savez(run / "predictions.npz", y_true=y, y_pred=(p > 0.5).astype(np.int64),
             proba=np.stack([1 - p, p], axis=1))
    data = json.loads((run / "data.json").read_text())
    (run / "data.json").write_text(json.dumps({**data, "task": "binary",
                                               "classes": ["other", "virginica"]}))
    page = section_page(run, tmp_path, predictions_section, worst_section)
    assert "the positive class" in page.captions["fig-roc"] and "fig-pr" in page.figures
    table = page.table_with("ROC-AUC")
    rows = {r[0]: r for r in table[1:]}
    assert float(rows["virginica"][5]) == pytest.approx(roc_auc_score(y, p), abs=5e-4)
    assert float(rows["virginica"][6]) == pytest.approx(average_precision_score(y, p), abs=5e-4)
    assert rows["other"][5] == "–"  # binary: one curve, the positive class's
    assert "worst_examples.npz is absent" in page.text


def test_damaged_worst_examples_are_left_out_with_a_note(iris_run, copy_run, tmp_path):
    run = copy_run(iris_run)
    np.savez(run / FILE, index=np.array([0, 999]), loss=np.ones(2), x=np.zeros((2, 4)))
    with pytest.warns(UserWarning, match="worst_examples.npz is damaged"):
        page = section_page(run, tmp_path, worst_section)
    assert "its index should hold test positions" in page.text and page.tables == []
    np.savez(run / FILE, index=np.array([0, 1]), loss=np.ones(2),
             x=np.array([None, None], dtype=object))  # would need pickle to load
    with pytest.warns(UserWarning, match="worst_examples.npz cannot be read"):
        page = section_page(run, tmp_path, worst_section)
    assert "Object arrays cannot be loaded" in page.text


@pytest.mark.slow
@pytest.mark.browser
def test_comparison_filters_rows_by_column_in_a_browser(iris_run, iris_run_fast, copy_run,
                                                        browser, tmp_path):
    third = copy_run(iris_run)  # a third row, with iris's config under its own path
    out = write_comparison([iris_run, iris_run_fast, third], tmp_path / "cmp.html")
    browser.resize(1400, 900)
    browser.open(out)
    count = ("return [...document.querySelectorAll('#runs-table tbody tr')]"
             ".filter(tr => getComputedStyle(tr).display !== 'none').length")
    type_in = """
      const box = document.querySelector(`#runs-table input[data-col="${arguments[0]}"]`);
      box.value = arguments[1];
      box.dispatchEvent(new Event('input'));
    """
    header = Page(out).table_with("train.optimizer.lr")[0]
    lr, run = header.index("train.optimizer.lr"), header.index("run")
    assert browser.run(count) == 3
    browser.run(type_in, lr, ">0.005")  # a comparison: only the 10x learning rate
    assert browser.run(count) == 1
    browser.run(type_in, lr, "")
    browser.run(type_in, run, "FAST")  # text, case-insensitive
    assert browser.run(count) == 1
    browser.run(type_in, lr, "default")  # both boxes apply: no row left
    assert browser.run(count) == 0
    browser.run(type_in, run, "")  # iris's config leaves lr to its default, as does the copy
    assert browser.run(count) == 2
    assert [e for e in browser.console() if e["level"] == "SEVERE"] == []


def test_study_figures_use_log_axes_when_two_trials_are_1000x_worse(study_dir):
    from trainwell.report import study_figures as sf
    from trainwell.report.studydata import load_study_dir

    study = load_study_dir(study_dir)
    done = study.completed()
    assert len(done) >= 4
    good = [t.value for t in done]
    assert max(good) / min(good) < 100  # as tuned: one linear axis
    assert sf.history_figure(study).axes[0].get_yscale() == "linear"
    for t in done[:2]:
        t.value *= 1000.0  # two bad trials
    assert sf.history_figure(study).axes[0].get_yscale() == "log"
    assert sf.best_so_far_figure(study).axes[0].get_yscale() == "log"
    # parallel coordinates: the objective axis is the last point of each trial's line; on a
    # log scale the good trials keep their distances instead of being squeezed into one point
    values = [t.value for t in done]
    lo, hi = np.log10(min(values)), np.log10(max(values))
    expected = sorted((np.log10(v) - lo) / (hi - lo) for v in values)
    ax = sf.parallel_figure(study).axes[0]
    ends = sorted(float(line.get_ydata()[-1]) for line in ax.lines
                  if len(line.get_ydata()) == len(study.param_names()) + 1)
    np.testing.assert_allclose(ends, expected, atol=1e-9)
    linear = (max(good[2:]) - min(good[2:])) / (max(values) - min(values))
    assert expected[len(done) - 3] - expected[0] > 10 * linear
    assert type(sf._norm(study)).__name__ == "LogNorm"


@pytest.mark.slow
def test_the_doctors_lr_range_figure_is_in_the_report(runs_root):
    """With `[doctor] enabled` the doctor writes lr_range.png into the run; the report's LR
    section shows that very image."""
    import base64

    from trainwell.api import fit

    cfg = {"data": {"source": "builtin:iris"}, "train": {"epochs": 1, "batch_size": 16},
           "runs_dir": str(runs_root), "doctor": {"enabled": True, "monitor": False}}
    run = fit(cfg, name="iris-doctor", quiet=True).run_dir
    png = (run / "lr_range.png").read_bytes()
    page = (run / "report.html").read_text()
    start = page.index('id="fig-lr-range"')
    assert base64.b64encode(png).decode("ascii") in page[start:start + len(png) * 2]


def test_per_class_metrics_are_a_table_not_a_panel_each(tmp_path):
    """`metrics = ["f1"]` logs f1_macro and f1_<class>: the curves keep f1_macro alone."""
    from trainwell.report.run_figures import metric_groups

    class Run:
        def metric_names(self):
            return ["train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_f1_0",
                    "val_f1_1", "val_precision_2", "val_recall_10", "val_mae"]

    assert list(metric_groups(Run())) == ["accuracy", "f1_macro", "mae"]

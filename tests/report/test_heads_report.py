"""report.html of runs with several heads: a multitask run's heads, per-head curves and test
predictions, and a domain-adversarial run's "Domain adaptation" section."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from reporthelp import Page, assert_self_contained

from trainwell.report import run_figures as rf
from trainwell.report import write_run_report
from trainwell.report.rundata import load_run

SMALL = {"train": {"epochs": 2, "batch_size": 32}, "model": {"hidden": [16]},
         "doctor": {"monitor": False}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A multitask run (a scarce-label class head and a partly labelled regression head) and a
    domain-adversarial run with its source-only baseline, each with the report ``fit`` wrote."""
    from trainwell.api import fit

    root = tmp_path_factory.mktemp("heads-report")
    fit({**SMALL, "runs_dir": str(root),
         "data": {"source": "builtin:multitask",
                  "params": {"n_samples": 240, "labelled_label": 0.4, "labelled_value": 0.7}},
         "heads": {"label": {"task": "multiclass"},
                   "value": {"weight": 0.5, "metrics": ["r2", "rmse"]}}},
        name="multitask", quiet=True)
    moons = {"n_samples": 120, "noise": 0.1, "angle": 35}
    fit({**SMALL, "runs_dir": str(root), "train": {"epochs": 3, "batch_size": 32},
         "data": {"source": "builtin:rotated_moons", "params": moons},
         "domain": {"target": "builtin:rotated_moons",
                    "params": {**moons, "domain": "target"}, "baseline": True}},
        name="dann", quiet=True)
    return {"multitask": root / "multitask", "dann": root / "dann"}


def _json(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------- multitask


def test_summary_lists_each_head_instead_of_classes(runs):
    run = runs["multitask"]
    heads = _json(run, "data.json")["heads"]
    total = sum(_json(run, "data.json")["splits"].values())
    page = Page(run / "report.html")
    assert_self_contained(page)
    card = {r[0]: r[1] for t in page.tables for r in t if len(r) == 2}
    assert card["heads"] == "2: label, value"
    assert "classes" not in card
    table = page.table_with("labelled rows")
    assert table[0] == ["head", "task", "target", "classes / outputs", "labelled rows",
                        "loss weight"]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert set(rows) == {"label", "value"}
    n = heads["label"]["labelled"]
    assert rows["label"] == ["multiclass", "label", "3: 0, 1, 2",
                             f"{n:,} of {total:,} ({n / total:.0%})", "1"]
    assert rows["value"][:3] == ["regression", "value", "1 output"]
    assert rows["value"][3].startswith(f"{heads['value']['labelled']:,} of {total:,}")
    assert rows["value"][4] == "0.5"


def test_test_predictions_per_head_use_only_its_labelled_rows(runs):
    run = runs["multitask"]
    pred = np.load(run / "predictions.npz")
    test = _json(run, "results.json")["test"]
    page = Page(run / "report.html")
    assert [f for f in page.figures if f.startswith(("fig-confusion", "fig-truth", "fig-resid"))
            ] == ["fig-confusion-label", "fig-truth-value", "fig-residuals-value"]
    total = len(pred["label_y_true"])
    has_label = np.isfinite(pred["label_y_true"])
    has_value = np.isfinite(pred["value_y_true"])
    assert 0 < has_label.sum() < total and 0 < has_value.sum() < total  # masking matters
    caption = page.captions["fig-confusion-label"]
    assert f"for head label on its labelled test rows ({has_label.sum()} of {total}" in caption
    acc = float(re.search(r"accuracy ([0-9.]+)\)", caption).group(1))
    assert acc == pytest.approx(test["test_label_accuracy"], abs=1e-4)
    recall = page.table_with("recall")
    assert sum(int(r[4]) for r in recall[1:]) == has_label.sum()
    assert f"({has_value.sum()} of {total})" in page.captions["fig-truth-value"]
    errors = {r[0]: r[1:] for r in page.table_with("RMSE")[1:]}
    assert float(errors["value"][1]) == pytest.approx(test["test_value_rmse"], rel=1e-3)
    y, p = pred["value_y_true"][has_value], pred["value_y_pred"].reshape(-1)[has_value]
    assert float(errors["value"][0]) == pytest.approx(np.abs(y - p).mean(), rel=1e-3)


def test_learning_curves_name_the_head_in_each_panel(runs):
    page = Page(runs["multitask"] / "report.html")
    assert page.captions["fig-curves"].startswith(
        "Loss (weighted sum of the heads); label head: loss, accuracy, f1_macro; "
        "value head: loss, r2, rmse per epoch")
    run = load_run(runs["multitask"])
    groups, titles = rf.head_panels(dict(sorted(rf.metric_groups(run).items())),
                                    {"label": "label head", "value": "value head"})
    fig = rf.curves_figure(run, groups, titles, "loss (weighted sum of the heads)")
    shown = [[t.get_text() for t in ax.texts] for ax in fig.axes if ax.get_visible()]
    assert [s[0] for s in shown][:3] == ["loss (weighted sum of the heads)", "label head: loss",
                                        "label head: accuracy"]
    legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert legend[0] == "val accuracy (per epoch)"  # the title names the head, the legend not


def test_head_panels_order_each_head_loss_first_and_match_the_longest_name():
    groups = {"a_b_loss": ["val_a_b_loss"], "a_accuracy": ["val_a_accuracy"],
              "a_loss": ["train_a_loss"], "lambda": ["train_lambda"]}
    order, titles = rf.head_panels(groups, {"a": "head a", "a_b": "head a_b"},
                                   {"lambda": ("strength", "lambda")})
    assert list(order) == ["lambda", "a_loss", "a_accuracy", "a_b_loss"]
    assert titles["a_b_loss"] == ("head a_b: loss", "loss")
    assert titles["a_accuracy"] == ("head a: accuracy", "accuracy")
    assert titles["lambda"] == ("strength", "lambda")
    assert rf.split_head("a_", ["a"]) == ("", "a_")


def test_heads_come_from_predictions_when_data_json_is_lost(runs, tmp_path):
    run = _copy(runs["multitask"], tmp_path / "mt")
    (run / "data.json").unlink()
    page = Page(write_run_report(run))
    assert {"fig-confusion-label", "fig-truth-value", "fig-residuals-value"} <= set(page.figures)
    assert "data.json is absent" in page.text


def test_a_head_without_labelled_test_rows_gets_a_note(runs, tmp_path):
    run = _copy(runs["multitask"], tmp_path / "mt")
    with np.load(run / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["label_y_true"] = np.full_like(arrays["label_y_true"], np.nan)
    np.savez(run / "predictions.npz", **arrays)
    page = Page(write_run_report(run))
    n = len(arrays["label_y_true"])
    assert f"none of the {n} test rows has a label for head label" in page.text
    assert "fig-confusion-label" not in page.figures and "fig-truth-value" in page.figures


# ------------------------------------------------------------------------------ domain


def test_domain_section_shows_the_verdict_and_accuracies_with_the_baseline(runs):
    run = runs["dann"]
    dom = _json(run, "results.json")["domain"]
    page = Page(run / "report.html")
    assert_self_contained(page)
    assert page.sections == ["summary", "curves", "domain", "lr", "layers", "doctor",
                             "predictions", "worst", "config"]
    assert '<a href="#domain">Domain adaptation</a>' in page.text
    status = dom["verdict"]["status"]
    badge = status if status in ("pass", "warn", "fail") else "info"
    assert (f'<div class="finding {badge}"><h3><span class="badge {badge}">{status}</span> '
            "Did adaptation help?</h3>") in page.text
    assert json.dumps(dom["verdict"]["text"])[1:-1].replace("->", "-&gt;") in page.text
    table = page.table_with("source-only baseline")
    assert table[0] == ["measure", "adapted (this run)", "source-only baseline", "goal"]
    rows = {r[0]: r[1:] for r in table[1:]}
    for label, key in (("source accuracy", "source_accuracy"),
                       ("target accuracy", "target_accuracy"),
                       ("domain classifier accuracy", "domain_accuracy")):
        assert float(rows[label][0]) == pytest.approx(dom[key], abs=1e-3)
        assert float(rows[label][1]) == pytest.approx(dom["baseline"][key], abs=1e-3)
    assert rows["domain classifier accuracy"][2] == "0.5 (chance)"
    assert "0.5" in page.captions["fig-domain"] and "target" in page.captions["fig-domain"]
    assert page.text.index('id="fig-domain"') < page.text.index('id="lr"')


def test_domain_figure_has_chance_line_and_source_against_target(runs):
    run = load_run(runs["dann"])
    baseline = run.results["domain"]["baseline"]["target_accuracy"]
    fig = rf.domain_figure(run, baseline)
    left, right = fig.axes
    dashed = [ln for ln in left.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [0.5, 0.5]
    lo, hi = left.get_ylim()
    assert lo < 0.5 < hi
    epochs, acc = run.series("train_domain_accuracy")
    assert epochs == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(left.collections[0].get_offsets()[:, 1], acc)
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    assert "source (val) (per epoch)" in labels and "target (per epoch)" in labels
    dotted = [ln for ln in right.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_ydata()[0] == pytest.approx(baseline)
    np.testing.assert_allclose(right.collections[1].get_offsets()[:, 1],
                               run.series("val_target_accuracy")[1])
    _assert_inside(rf.domain_figure, run, baseline)


def _assert_inside(builder, *args) -> None:  # noqa: ANN001
    """Every label, title and legend of the figure lies inside the saved image."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from trainwell.report.figures import STYLE, fit_margins

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        fig = builder(*args)
        fit_margins(fig)
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        box = fig.get_tightbbox(renderer)
        width, height = fig.get_size_inches()
        assert box.x0 > -0.02 and box.y0 > -0.02, box
        assert box.x1 < width + 0.02 and box.y1 < height + 0.02, box


def test_domain_run_without_baseline_or_target_labels(runs, tmp_path):
    run = _copy(runs["dann"], tmp_path / "dann")
    results = _json(run, "results.json")
    del results["domain"]["baseline"]
    (run / "results.json").write_text(json.dumps(results))
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [{k: v for k, v in rec.items() if "target" not in k} for rec in lines]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    page = Page(write_run_report(run))
    table = page.table_with("adapted (this run)")
    assert table[0] == ["measure", "adapted (this run)", "goal"]
    assert "Set domain.baseline = true to compare" in page.text
    assert len(load_run(run).series("val_target_accuracy")[0]) == 0
    fig = rf.domain_figure(load_run(run))
    assert len(fig.axes) == 1  # the domain classifier only
    assert "source and target validation" not in page.captions["fig-domain"]


def test_domain_run_that_did_not_finish_still_shows_its_training(runs, tmp_path):
    run = _copy(runs["dann"], tmp_path / "dann")
    results = _json(run, "results.json")
    del results["domain"]
    (run / "results.json").write_text(json.dumps(results))
    meta = _json(run, "meta.json")
    (run / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    page = Page(write_run_report(run))
    assert "domain" in page.sections and "fig-domain" in page.figures
    assert ("results.json holds no domain summary: the run did not complete "
            "(status: interrupted)") in page.text
    assert "Did adaptation help?" not in page.text


def test_domain_curves_are_titled_by_their_part(runs):
    caption = Page(runs["dann"] / "report.html").captions["fig-curves"]
    assert caption.startswith("Loss (train: label + domain classifier); source: accuracy")
    assert "domain classifier: loss, accuracy; gradient reversal lambda per epoch" in caption

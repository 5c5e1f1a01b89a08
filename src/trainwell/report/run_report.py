"""``report.html`` of one run: summary, curves, LR, layer statistics, doctor, predictions.

A run with ``[heads]`` gets its heads in the summary, one panel per head and metric in the
curves and its test predictions per head; a domain-adversarial run (``[domain]``) gets a
"Domain adaptation" section: the verdict, source / target / domain classifier accuracy and the
domain classifier over training.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.report import html as h
from trainwell.report import run_figures as rf
from trainwell.report.figures import render, render_panels
from trainwell.report.rundata import TIME_LABEL, TIME_NOTE, RunData, load_run

if TYPE_CHECKING:
    from trainwell.report.live import LiveState

logger = logging.getLogger(__name__)


def _absent(run: RunData, name: str, what: str) -> str:
    why = run.problems.get(name, f"{name} holds nothing for this section")
    return h.note(f"{why}: {what}")


def summary_section(run: RunData) -> str:
    meta, data, res, cfg = run.meta, run.data, run.results, run.config
    model, train, splits = _table(cfg, "model"), _table(cfg, "train"), _table(data, "splits")
    classes = data.get("classes")
    features = data.get("feature_names")
    heads = run_heads(run)
    labels = (("heads", f"{len(heads)}: {', '.join(heads)}") if heads
              else ("classes", _classes_text(classes)))
    cards = [
        ("Run", [
            ("name", run.name), ("status", meta.get("status")),
            ("seed", meta.get("seed", cfg.get("seed"))),
            ("started", meta.get("started")), ("finished", meta.get("finished")),
            (TIME_LABEL, h.fmt_duration(res.get("wall_time"))),
            ("stopped early", res.get("stopped_early")), ("diverged", res.get("diverged")),
        ]),
        ("Data", [
            ("source", data.get("source", _get(cfg, "data", "source"))), ("task", data.get("task")),
            labels,
            ("input shape", data.get("input_shape")),
            ("features", len(features) if isinstance(features, list) else None),
            ("outputs", data.get("n_outputs")),
            *((f"{k} samples", v) for k, v in splits.items()),
        ]),
        ("Model", [
            ("parameters", _params_text(res.get("n_params"))),
            *((k, _inline(model[k])) for k in _model_keys(model)),
            ("loss", _named(train.get("loss"))),
            ("optimizer", _named(train.get("optimizer"), ("lr", "weight_decay", "momentum"))),
            ("schedule", _named(train.get("schedule"), ("warmup",))),
            ("epochs", train.get("epochs")), ("batch size", train.get("batch_size")),
            *((k.replace("_", " "), _inline(train[k])) for k in ("class_weight", "label_smoothing")
              if train.get(k)),
        ]),
        ("Machine", [
            ("platform", meta.get("platform")), ("device", meta.get("device")),
            ("python", meta.get("python")), ("torch", meta.get("torch")),
            ("trainwell", meta.get("trainwell")),
        ]),
    ]
    body = '<div class="cards">' + "".join(
        f'<div class="card"><h3>{h.esc(title)}</h3>{h.kv_table(pairs)}</div>'
        for title, pairs in cards
    ) + "</div>"
    if heads:
        body += "<h3>Heads</h3>" + heads_table(run, heads)
    body += "<h3>Results</h3>" + results_tables(run)
    if res.get("wall_time") is not None:
        body += h.note(TIME_NOTE)
    for name in ("meta.json", "data.json", "results.json"):
        if name in run.problems:
            body += h.note(run.problems[name])
    return body


def run_heads(run: RunData) -> dict[str, dict[str, Any]]:
    """The heads of a run with ``[heads]`` (``data.json``'s, name -> columns, task, classes,
    n_outputs, labelled); ``{}`` for a run with one head.

    Without a readable ``data.json`` the heads come from ``predictions.npz``'s
    ``<head>_y_true`` arrays (a classification head is the one with ``<head>_proba``).
    """
    heads = {str(k): v for k, v in _table(run.data, "heads").items() if isinstance(v, dict)}
    if heads or run.data.get("heads") is not None or "y_true" in run.predictions:
        return heads
    suffix = "_y_true"
    names = [k[: -len(suffix)] for k in run.predictions if k.endswith(suffix) and k != suffix]
    return {name: {"task": "multiclass" if f"{name}_proba" in run.predictions
                   else "regression"} for name in names}


def heads_table(run: RunData, heads: dict[str, dict[str, Any]]) -> str:
    """One row per head: task, target columns, classes or outputs, labelled rows, loss weight."""
    total = sum(v for v in _table(run.data, "splits").values()
                if isinstance(v, int) and not isinstance(v, bool))
    cfg_heads = _table(run.config, "heads")
    rows = []
    for name, head in heads.items():
        task = head.get("task")
        if task in ("binary", "multiclass"):
            shape = _classes_text(head.get("classes"))
        else:
            n = head.get("n_outputs")
            shape = f"{n} output{'s' if n != 1 else ''}" if isinstance(n, int) else None
        labelled = head.get("labelled")
        if isinstance(labelled, int) and total:
            labelled = f"{labelled:,} of {total:,} ({labelled / total:.0%})"
        columns = head.get("columns")
        rows.append((name, task, ", ".join(map(str, columns)) if isinstance(columns, list)
                     else columns, shape, labelled, _table(cfg_heads, name).get("weight")))
    return h.table(["head", "task", "target", "classes / outputs", "labelled rows",
                    "loss weight"], rows)


def results_tables(run: RunData) -> str:
    res = run.results
    best, final, test = _table(res, "best"), _table(res, "final"), _table(res, "test")
    if not (best or final or test):
        if run.meta.get("status") == "running" and "results.json" in run.problems:
            return h.note("the run is training: its best, final and test metrics come at its "
                          "end; the learning curves below are up to date")
        if "results.json" in run.problems:
            return _absent(run, "results.json", "no best or final metrics to show")
        return h.note("results.json holds no metrics: no epoch finished")
    keys = [k for k in list(best) + [k for k in final if k not in best]
            if k not in ("epoch", "step")]
    keys = list(dict.fromkeys(keys))
    best_epoch = res.get("best_epoch")
    best_head = f"best (epoch {best_epoch})" if best_epoch is not None else "best"
    out = h.table(["metric", best_head, "final"], [(k, best.get(k), final.get(k)) for k in keys])
    if test:
        out += ("<h3>Test split (best snapshot)</h3>"
                + h.table(["metric", "value"], list(test.items())))
        out += averaged_test_tables(res)
    return out


def curves_section(run: RunData) -> str:
    if not run.metrics:
        return _absent(run, "metrics.jsonl", "no learning curves")
    groups: dict[str, Any] = dict(sorted(rf.metric_groups(run).items()))
    heads = run_heads(run)
    if heads:
        groups, titles = rf.head_panels(groups, {name: f"{name} head" for name in heads})
        loss_title = "loss (weighted sum of the heads)"
    elif is_domain_run(run):
        groups, titles = rf.head_panels(groups, DOMAIN_PARTS, DOMAIN_OTHER)
        if "grl_lambda" in groups:  # the schedule, after the curves it shapes
            groups["grl_lambda"] = groups.pop("grl_lambda")
        loss_title = "loss (train: label + domain classifier)"
    else:
        titles, loss_title = {}, "loss"
    if titles:
        caption = _panels_text(loss_title, [titles[base][0] for base in groups])
    else:
        caption = "Loss" + "".join(f", {base}" for base in groups)
    caption += " per epoch: points, and their moving average"
    panels = render_panels(rf.curves_figure, run, groups, titles, loss_title)
    return h.figures([h.panel_figure("fig-curves", panels, caption)])


def _panels_text(loss_title: str, titles: list[str]) -> str:
    """``"Loss (...); label head: loss, accuracy; value head: loss, r2"``: the panel titles,
    those of one head named once."""
    parts: list[tuple[str, list[str]]] = []
    for title in titles:
        words, sep, metric = title.rpartition(": ")
        if sep and parts and parts[-1][0] == words:
            parts[-1][1].append(metric)
        else:
            parts.append((words, [metric]) if sep else ("", [title]))
    text = "; ".join(f"{w}: {', '.join(ms)}" if w else ", ".join(ms) for w, ms in parts)
    return loss_title[:1].upper() + loss_title[1:] + (f"; {text}" if text else "")


# The metric prefixes of a domain-adversarial run, and the words naming them in a panel title.
DOMAIN_PARTS = {"label": "label head", "target": "target domain",
                "domain": "domain classifier"}
DOMAIN_OTHER = {"accuracy": ("source: accuracy", "accuracy"),
                "f1_macro": ("source: f1_macro", "f1_macro"),
                "grl_lambda": ("gradient reversal lambda", "lambda")}


def is_domain_run(run: RunData) -> bool:
    """Whether the run trained with ``[domain]`` (domain-adversarial)."""
    return bool(_table(run.data, "domain") or _table(run.results, "domain")
                or "train_domain_accuracy" in run.metric_names())


def domain_section(run: RunData) -> str:
    """The verdict, source / target / domain classifier accuracy (with the source-only
    baseline's when it ran), the target data, and the domain classifier over training."""
    dom = _table(run.results, "domain")
    base = _table(dom, "baseline")
    verdict = _table(dom, "verdict")
    body = ""
    if verdict.get("text"):
        status = verdict.get("status", "info")
        body += h.verdict(status, "Did adaptation help?", str(verdict["text"]))
    if dom:
        rows = [(label, dom.get(key), *((base.get(key),) if base else ()), goal)
                for label, key, goal in DOMAIN_ROWS]
        lam = dom.get("grl_lambda")
        if _number(lam) is not None:
            rows.append(("gradient reversal lambda (end)", lam, *(("–",) if base else ()),
                         "the reversal's strength"))
        head = ["measure", "adapted (this run)", *(["source-only baseline"] if base else [])]
        body += h.table([*head, "goal"], rows)
        body += h.note("Source accuracy: the source test split; target accuracy: the target "
                       "rows, scored with the labels training never saw; domain classifier: "
                       "its accuracy on the training batches of the epoch whose weights were "
                       "kept."
                       + ("" if base else " Set domain.baseline = true to compare with the "
                          "same model trained on the source only."))
    elif "results.json" in run.problems:
        body += _absent(run, "results.json", "no source, target and domain accuracy to show")
    else:
        status = run.meta.get("status")
        body += h.note("results.json holds no domain summary: the run did not complete"
                       + (f" (status: {status})" if status else ""))
    target = _table(run.data, "domain")
    if target:
        labelled = target.get("labelled")
        body += "<h3>Target data</h3>" + h.kv_table([
            ("source", target.get("origin")), ("rows", target.get("n_rows")),
            ("labels", "kept for evaluation only" if labelled
             else "none (target accuracy cannot be measured)" if labelled is not None
             else None),
            ("preprocessing", target.get("preprocess")),
        ])
    if run.series("train_domain_accuracy")[0]:
        caption = ("The domain classifier's accuracy on the training batches per epoch; the "
                   "dashed line is chance (0.5), the goal: features that do not tell source "
                   "from target")
        if run.series("val_target_accuracy")[0]:
            caption += "; the label head's accuracy on the source and target validation data"
        panels = render_panels(rf.domain_figure, run, _number(base.get("target_accuracy")))
        body += h.figures([h.panel_figure("fig-domain", panels, caption)])
    else:
        body += _absent(run, "metrics.jsonl", "no domain classifier accuracy over training")
    return body


DOMAIN_ROWS = (
    ("source accuracy", "source_accuracy", "high: the label task is kept"),
    ("target accuracy", "target_accuracy", "high: above the source-only baseline"),
    ("domain classifier accuracy", "domain_accuracy", "0.5 (chance)"),
)


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def lr_section(run: RunData) -> str:
    """The schedule as it ran, and the doctor's LR range test (``lr_range.png``) when it ran."""
    finder = ""
    if (run.path / "lr_range.png").is_file():
        finder = png_figure(run, "lr_range.png", "fig-lr-range",
                            "The doctor's LR range test: the loss as the learning rate grew "
                            "each step, and the suggested rate")
    if not run.series("lr")[0]:
        return _absent(run, "metrics.jsonl", "no learning rate was recorded") + finder
    figs = [h.figure("fig-lr", render(rf.lr_figure, run),
                     "Learning rate of each epoch, as the schedule ran")]
    return h.figures(figs) + (h.figures([finder]) if finder.startswith("<figure") else finder)


def layer_snapshots(
    run: RunData,
) -> tuple[list[tuple[str, dict[str, dict[str, float]]]], str]:
    """The per-layer statistics the layers section compares, as (label, table) pairs, and the
    file they come from: the doctor's at init and end, else the first and last epoch's."""
    acts = run.doctor.get("activation_stats") if isinstance(run.doctor, dict) else None
    if isinstance(acts, dict):
        snaps = [(label, rf.layer_table(acts.get(label))) for label in ("init", "end")]
        snaps = [(label, t) for label, t in snaps if t]
        if snaps:
            return snaps, "doctor.json"
    if run.stats:
        first, last = run.stats[0], run.stats[-1]
        snaps = [(f"epoch {first.get('epoch', 0)}", rf.layer_table(first))]
        if last is not first:
            snaps.append((f"epoch {last.get('epoch', len(run.stats))}", rf.layer_table(last)))
        return [(label, t) for label, t in snaps if t], "stats.jsonl"
    return [], ""


def _present_stats(tables: list[dict[str, dict[str, float]]]) -> list[str]:
    seen = {stat for table in tables for stats in table.values() for stat in stats}
    return [s for s in rf.LAYER_STATS if s in seen]


def layers_section(run: RunData) -> str:
    snaps, source = layer_snapshots(run)
    figs: list[str] = []
    details = ""
    if snaps:
        stats = _present_stats([t for _, t in snaps])
        labels = " and ".join(label for label, _ in snaps)
        zero = [s for s in stats
                if all(t[layer].get(s, 0.0) == 0.0 for _, t in snaps for layer in t)]
        if zero:
            details += h.note(", ".join(rf.LAYER_STATS[s] for s in zero)
                              + ": 0 in every layer, at " + labels)
        shown = [s for s in stats if s not in zero]
        if shown:
            caption = (f"Per-layer statistics at {labels} ({source}): "
                       + ", ".join(rf.LAYER_STATS[s] for s in shown))
            figs.append(h.panel_figure("fig-layers",
                                       render_panels(rf.layer_bars_figure, snaps, shown), caption))
        rows = []
        for layer in dict.fromkeys(name for _, t in snaps for name in t):
            for stat in stats:
                rows.append((layer, rf.LAYER_STATS[stat],
                             *(t.get(layer, {}).get(stat) for _, t in snaps)))
        details += ("<details><summary>The numbers</summary>"
                    + h.table(["layer", "statistic", *(label for label, _ in snaps)], rows)
                    + "</details>")
    if len(run.stats) > 1:
        tables = [rf.layer_table(r) for r in run.stats]
        present = _present_stats(tables)
        during = [stat for stat in ("grad_norm", "update_ratio", "act_std", "dead_frac")
                  if stat in present
                  and not all(v.get(stat, 0.0) == 0.0 for t in tables for v in t.values())]
        if during:
            caption = ("Each layer during training (stats.jsonl): "
                       + ", ".join(rf.LAYER_STATS[s] for s in during))
            figs.append(h.panel_figure("fig-epochs",
                                       render_panels(rf.layer_epochs_figure, run.stats, during),
                                       caption))
    if not figs:
        return (_absent(run, "stats.jsonl", "no in-training statistics were recorded")
                + _absent(run, "doctor.json", "no activation statistics at init and end"))
    notes = ""
    for name in ("doctor.json", "stats.jsonl"):
        if name in run.problems:
            notes += _absent(run, name, "its statistics are not shown")
    return h.figures(figs) + details + notes


def doctor_section(run: RunData) -> str:
    findings = run.doctor.get("findings") if isinstance(run.doctor, dict) else None
    if not isinstance(findings, list):
        return _absent(run, "doctor.json", "the doctor did not examine this run")
    if not findings:
        return h.note("The doctor reported no findings.")
    counts: dict[str, int] = {}
    items = []
    for f in findings:
        if not isinstance(f, dict):
            continue
        status = str(f.get("status", "info"))
        counts[status] = counts.get(status, 0) + 1
        cls = status if status in ("pass", "warn", "fail") else "info"
        advice = f.get("advice") if isinstance(f.get("advice"), list) else []
        evidence = _table(f, "evidence")
        item = (f'<div class="finding {cls}"><h3><span class="badge {cls}">{h.esc(status)}</span> '
                f'{h.esc(f.get("title", f.get("check", "")))}</h3>')
        if f.get("check"):
            item += f'<p class="note">check: {h.esc(f["check"])}</p>'
        if f.get("detail"):
            item += f"<p>{h.esc(f['detail'])}</p>"
        if advice:
            item += "<ul>" + "".join(f"<li>{h.esc(a)}</li>" for a in advice) + "</ul>"
        if evidence:
            item += ("<details><summary>evidence</summary>"
                     + h.kv_table((k, _inline(v)) for k, v in evidence.items()) + "</details>")
        items.append(item + "</div>")
    head = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"<p>{h.esc(head)}</p>" + "".join(items)


def predictions_section(run: RunData) -> str:
    import numpy as np

    pred = run.predictions
    if not pred:
        return _absent(run, "predictions.npz", "no test-split predictions")
    heads = run_heads(run)
    if heads:
        return "".join(_head_predictions(run, name, head) for name, head in heads.items())
    y_true = np.asarray(pred.get("y_true", []))
    y_pred = pred.get("y_pred")
    if y_pred is None and "proba" in pred:
        y_pred = np.asarray(pred["proba"]).argmax(axis=-1)
    y_pred = np.asarray(y_pred if y_pred is not None else [])
    if y_true.size == 0 or y_pred.size == 0:
        return h.note("predictions.npz holds no test predictions (the test split is empty)")
    task = run.task or ("regression" if np.issubdtype(y_true.dtype, np.floating)
                        and "proba" not in pred else "multiclass")
    if task == "regression":
        return _regression(y_true, y_pred)
    return _classification(run.data.get("classes"), y_true, y_pred, proba=pred.get("proba"))


def _head_predictions(run: RunData, name: str, head: dict[str, Any]) -> str:
    """One head's test predictions, on the test rows that have its label (NaN marks the
    others in ``<head>_y_true``)."""
    import numpy as np

    pred = run.predictions
    task = head.get("task")
    y_true = pred.get(f"{name}_y_true")
    y_pred = pred.get(f"{name}_y_pred")
    if y_pred is None and f"{name}_proba" in pred:
        y_pred = np.asarray(pred[f"{name}_proba"]).argmax(axis=-1)
    title = f"<h3>Head {h.esc(name)} ({h.esc(task or 'unknown task')})</h3>"
    if y_true is None or y_pred is None:
        missing = f"{name}_y_true" if y_true is None else f"{name}_y_pred"
        return title + h.note(f"predictions.npz holds no {missing}: no predictions to show")
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred)
    total = len(y_true)
    labelled = np.isfinite(y_true.reshape(total, -1)).all(axis=1)
    n = int(labelled.sum())
    if n == 0:
        return title + h.note(f"none of the {total} test rows has a label for head {name}")
    y_true, y_pred = y_true[labelled], y_pred[labelled]
    slug = _slug(name)
    where = (f"for head {name} on its labelled test rows", f"{n} of {total}")
    if task == "regression" or (task is None and f"{name}_proba" not in pred):
        columns = head.get("columns")
        names = ([str(c) for c in columns] if isinstance(columns, list)
                 and len(columns) == y_true.reshape(n, -1).shape[1] else None)
        return title + _regression(y_true, y_pred, names, slug, where)
    proba = pred.get(f"{name}_proba")
    return title + _classification(head.get("classes"), y_true, y_pred, slug, where,
                                   None if proba is None else np.asarray(proba)[labelled])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _classification(classes: Any, y_true: Any, y_pred: Any, slug: str = "",
                    where: tuple[str, str] | None = None, proba: Any = None) -> str:
    """The confusion matrix, per-class precision, recall, F1 and support, and (with the
    predicted probabilities ``proba``) the ROC and precision-recall curves; ``slug`` and
    ``where`` (the rows shown, and how many) name a head's figures and rows (a run with one
    head: the test split)."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    from trainwell.report import class_scores as cs

    y_true = y_true.reshape(-1).astype(np.int64)
    y_pred = y_pred.reshape(-1).astype(np.int64)
    n = int(max(y_true.max(), y_pred.max())) + 1
    if isinstance(classes, list) and len(classes) >= n:
        labels = [str(c) for c in classes]
    else:
        labels = [str(i) for i in range(n)]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    acc = float((y_true == y_pred).mean())
    shown, count = where or ("on the test split", f"{len(y_true)} samples")
    fig = h.figure(f"fig-confusion{'-' if slug else ''}{slug}",
                   render(rf.confusion_figure, matrix, labels),
                   f"Confusion matrix {shown} ({count}, accuracy {acc:.4f})")
    scores = cs.per_class_scores(y_true, y_pred, len(labels))
    figs = [fig]
    aucs: dict[int, tuple[float, float]] = {}
    note = ""
    proba = None if proba is None else np.asarray(proba, dtype=float)
    if (proba is not None and proba.ndim == 2 and proba.shape[1] == len(labels)
            and len(proba) == len(y_true)):
        if cs.curve_classes(y_true, len(labels)):
            dash = f"-{slug}" if slug else ""
            how = ("the positive class" if len(labels) == 2
                   else "each class against the rest")
            figs.append(h.figure(f"fig-roc{dash}", render(cs.roc_figure, y_true, proba, labels),
                                 f"ROC curves {shown}, {how}"))
            figs.append(h.figure(f"fig-pr{dash}", render(cs.pr_figure, y_true, proba, labels),
                                 f"Precision-recall curves {shown}, {how}; dotted: the "
                                 "class's share of the samples"))
            aucs = cs.auc_scores(y_true, proba, len(labels))
        else:
            note = h.note("ROC and precision-recall curves need samples of two classes; the "
                          "test split has one")
    rows = [(lab, s["precision"], s["recall"], s["f1"], s["support"],
             *((aucs[i] if i in aucs else (None, None)) if aucs else ()))
            for i, (lab, s) in enumerate(zip(labels, scores, strict=True))]
    head = ["class", "precision", "recall", "F1", "support",
            *(["ROC-AUC", "average precision"] if aucs else [])]
    return (h.figures(figs) + f"<h3>Per class {h.esc(shown)}</h3>" + h.table(head, rows)
            + note)


def _regression(y_true: Any, y_pred: Any, names: list[str] | None = None, slug: str = "",
                where: tuple[str, str] | None = None) -> str:
    """Predicted against true, residuals, and MAE / RMSE per target; ``slug`` and ``where``
    (the rows shown, and how many) name a head's figures and rows (a run with one head: the
    test split)."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    names = names or [f"target {k}" for k in range(y_true.shape[1])]
    suffix = f"-{slug}" if slug else ""
    shown, count = where or ("on the test split", f"{len(y_true)} samples")
    figs = [h.figure(f"fig-truth{suffix}", render(rf.truth_figure, y_true, y_pred, names),
                     f"Predicted against true {shown} ({count})"),
            h.figure(f"fig-residuals{suffix}", render(rf.residual_figure, y_true, y_pred, names),
                     f"Residuals against predicted values {shown}")]
    err = y_true - y_pred
    rows = [(name, float(np.abs(err[:, k]).mean()), float(np.sqrt((err[:, k] ** 2).mean())))
            for k, name in enumerate(names)]
    return h.figures(figs) + h.table(["target", "MAE", "RMSE"], rows)


# at most this many features of a table's rows are shown among the worst examples
MAX_FEATURES = 40


def worst_section(run: RunData) -> str:
    """The test samples with the largest loss (``worst_examples.npz``): images in a grid, table
    rows with their features, each with its true and predicted label or value."""
    import numpy as np

    from trainwell.report import examples as ex

    arrays = run.examples
    if not arrays and run_heads(run):
        return h.note("a run with several heads has no single loss to rank its test samples by; "
                      "see each head's predictions above")
    if not arrays:
        return _absent(run, ex.FILE, "no worst test examples to show")
    pred = run.predictions
    idx = arrays["index"].astype(np.int64)
    classes = run.data.get("classes")
    classification = "proba" in pred and run.task != "regression"

    def label(value: Any) -> str:
        if classification:
            k = int(value)
            return str(classes[k]) if isinstance(classes, list) and k < len(classes) else str(k)
        flat = [float(v) for v in np.ravel(value)]
        return h.fmt(flat[0]) if len(flat) == 1 else h.fmt(flat)

    y_true, y_pred = pred["y_true"][idx], pred.get("y_pred", pred["y_true"])[idx]
    how = ("cross-entropy of the predicted probabilities" if classification
           else "squared error, averaged over the outputs")
    x = arrays["x"]
    intro = h.note(f"The {len(idx)} test samples with the largest loss ({how}) under the kept "
                   "weights, worst first.")
    if x.ndim >= 3:  # images (k, C, H, W) or sequences (k, T, F)
        titles = [f"true {label(t)} / pred {label(p)}\nloss {lo:.3g}"
                  for t, p, lo in zip(y_true, y_pred, arrays["loss"], strict=True)]
        fig = render(ex.images_figure, x, titles)
        what = ("images (each scaled to its own range)" if x.ndim == 4 else
                "sequences (time down, features across; each scaled to its own range)")
        return intro + h.figures([h.figure(
            "fig-worst", fig, f"The worst test {what}, with true and predicted labels and "
            "the loss")])
    names = run.data.get("feature_names")
    n_feat = x.shape[1]
    if not (isinstance(names, list) and len(names) == n_feat):
        names = [f"x{j}" for j in range(n_feat)]
    shown = min(n_feat, MAX_FEATURES)
    head = ["rank", "source row", "loss", "true", "predicted",
            *(["p(true)"] if classification else []), *names[:shown]]
    rows = []
    for rank, (i, lo, t, p) in enumerate(zip(idx, arrays["loss"], y_true, y_pred,
                                             strict=True), start=1):
        extra = [float(pred["proba"][i, int(t)])] if classification else []
        rows.append([rank, int(arrays["row"][rank - 1]) if "row" in arrays else int(i),
                     float(lo), label(t), label(p), *extra,
                     *(float(v) for v in x[rank - 1, :shown])])
    more = (f" The first {shown} of its {n_feat} features are shown." if shown < n_feat else "")
    return (intro + h.table(head, rows)
            + h.note("Features as the model saw them (after preprocessing)." + more))


def config_section(run: RunData) -> str:
    if not run.config_text:
        return _absent(run, "config.toml", "the resolved config is unknown")
    lines = run.config_text.count("\n") + 1
    return (f"<details><summary>config.toml ({lines} lines)</summary>"
            f"<pre>{h.esc(run.config_text)}</pre></details>")


def png_figure(run: RunData, name: str, fig_id: str, caption: str, *, wide: bool = False) -> str:
    """A PNG the run wrote (``augment_grid.png``, ``lr_range.png``) as a figure of the page, or a
    note saying why it is not shown."""
    import base64

    path = run.path / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        return h.note(f"{path.name} cannot be read: {exc.strerror or exc}")
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 24:
        return h.note(f"{path.name} is not a PNG image")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return h.figure(fig_id, uri, caption, wide=wide)


def augment_section(run: RunData) -> str:
    """The grid of training images beside their augmented views (``augment_grid.png``)."""
    ops = ", ".join(k for k in _table(run.config, "augment"))
    return png_figure(run, "augment_grid.png", "augment-grid",
                      f"training images (top row) and the views the augmentation made of them "
                      f"in the first epochs ({ops}); under each its target, a mixture for "
                      "mixup / cutmix", wide=True)


def render_run_report(run: RunData, live: LiveState | None = None) -> str:
    """The HTML of one run's report; ``live``: written during training (the page says how far
    the run got and, until it stopped, reloads itself)."""
    sections = [
        ("summary", "Summary", summary_section(run)),
        ("curves", "Learning curves", curves_section(run)),
        *([("augment", "What the model is fed", augment_section(run))]
          if (run.path / "augment_grid.png").is_file() else []),
        *([("domain", "Domain adaptation", domain_section(run))] if is_domain_run(run) else []),
        ("lr", "Learning-rate schedule", lr_section(run)),
        ("layers", "Layer statistics", layers_section(run)),
        ("doctor", "Doctor's findings", doctor_section(run)),
        ("predictions", "Test predictions", predictions_section(run)),
        ("worst", "Worst test examples", worst_section(run)),
        ("config", "Config", config_section(run)),
    ]
    status = run.meta.get("status", "unknown status")
    if live is not None and live.stopped:
        status = live.stopped
    task = run.task or "unknown task"
    if is_domain_run(run):
        task += ", domain-adversarial"
    if live is None:
        return h.page(f"Run {run.name}", f"{task} · {status}", sections)
    return h.page(f"Run {run.name}", f"{task} · {status}", sections, banner=live.banner(),
                  refresh_s=None if live.stopped else live.reload_s)


def write_run_report(run_dir: str | Path, out: str | Path | None = None,
                     live: LiveState | None = None) -> Path:
    """Write the self-contained ``report.html`` of a run directory.

    Args:
        run_dir: a run directory; files it lacks get a note in their section.
        out: where to write; default ``run_dir/report.html``.
        live: the run's progress, for a report written during training
            (:class:`~trainwell.report.live.LiveReport`).

    Returns:
        The path of the written report.

    Raises:
        RunError: if ``run_dir`` is not a run directory.

    Example:
        >>> write_run_report("runs/iris-mlp")  # doctest: +SKIP
        PosixPath('runs/iris-mlp/report.html')
    """
    run = load_run(run_dir)
    path = Path(out) if out is not None else run.path / "report.html"
    h.write_page(path, lambda: render_run_report(run, live))
    logger.info("wrote %s", path)
    return path


def _table(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` when it is a table (a JSON object), else an empty one."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _get(cfg: dict[str, Any], section: str, key: str) -> Any:
    return _table(cfg, section).get(key)


# The model settings the summary shows, when the config has them; the Config section has all.
MODEL_KEYS = ("arch", "hidden", "activation", "init", "norm", "dropout", "channels",
              "kernel_size", "widths", "blocks", "cell", "hidden_size", "num_layers",
              "bidirectional")
ARCH_KEYS = {"cnn": {"channels", "kernel_size"}, "resnet": {"widths", "blocks"},
             "rnn": {"cell", "hidden_size", "num_layers", "bidirectional"}}


def _model_keys(model: dict[str, Any]) -> list[str]:
    arch = str(model.get("arch", ""))
    other = set().union(*(v for k, v in ARCH_KEYS.items() if k != arch))
    return [k for k in MODEL_KEYS if k in model and k not in other
            and model[k] not in (None, "", [], {})]


def _named(value: Any, keys: tuple[str, ...] = ()) -> Any:
    """``{"name": "adam", "lr": 0.01, ...}`` -> ``"adam (lr=0.01)"``; strings pass through."""
    if not isinstance(value, dict):
        return value
    extra = [f"{k}={h.fmt(value[k])}" for k in keys if value.get(k) not in (None, 0, 0.0)]
    name = str(value.get("name", ""))
    return f"{name} ({', '.join(extra)})" if extra else name


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={h.fmt(v)}" for k, v in value.items())
    return h.fmt(value)


def _classes_text(classes: Any) -> Any:
    if not isinstance(classes, list):
        return None
    shown = ", ".join(str(c) for c in classes[:10])
    return f"{len(classes)}: {shown}" + (", …" if len(classes) > 10 else "")


def _params_text(n: Any) -> Any:
    if isinstance(n, int) and not isinstance(n, bool):
        return f"{n:,}"
    return n


def averaged_test_tables(res: dict[str, Any]) -> str:
    """``[tta]``: the test metrics without and with test-time augmentation / Monte Carlo
    passes, side by side (``results.json`` ``test``, ``test_tta``, ``test_mc``)."""
    test, info = _table(res, "test"), _table(res, "tta")
    out = ""
    for key, title, how in (
        ("test_tta", "Test split with test-time augmentation",
         f"views: {', '.join(map(str, info.get('views') or []))}; beta {info.get('beta')} "
         "(final = beta * plain + (1 - beta) * mean over the views)"),
        ("test_mc", "Test split with Monte Carlo passes",
         f"{info.get('mc_samples')} passes with {info.get('stochastic_layers')} sampling, "
         f"seed {info.get('seed')}"),
    ):
        averaged = _table(res, key)
        if averaged:
            rows = [(k, test.get(k), v) for k, v in averaged.items()]
            out += (f"<h3>{title}</h3>" + h.table(["metric", "plain", "averaged"], rows)
                    + h.note(how))
    return out

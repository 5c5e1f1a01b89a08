"""``report.html`` of one run: summary, curves, LR, layer statistics, doctor, predictions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trainwell.report import html as h
from trainwell.report import run_figures as rf
from trainwell.report.figures import render
from trainwell.report.rundata import RunData, load_run

logger = logging.getLogger(__name__)


def _absent(run: RunData, name: str, what: str) -> str:
    why = run.problems.get(name, f"{name} holds nothing for this section")
    return h.note(f"{why}: {what}")


def summary_section(run: RunData) -> str:
    meta, data, res, cfg = run.meta, run.data, run.results, run.config
    model, train, splits = _table(cfg, "model"), _table(cfg, "train"), _table(data, "splits")
    classes = data.get("classes")
    features = data.get("feature_names")
    cards = [
        ("Run", [
            ("name", run.name), ("status", meta.get("status")),
            ("seed", meta.get("seed", cfg.get("seed"))),
            ("started", meta.get("started")), ("finished", meta.get("finished")),
            ("wall time", h.fmt_duration(res.get("wall_time"))),
            ("stopped early", res.get("stopped_early")), ("diverged", res.get("diverged")),
        ]),
        ("Data", [
            ("source", data.get("source", _get(cfg, "data", "source"))), ("task", data.get("task")),
            ("classes", _classes_text(classes)),
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
    body += "<h3>Results</h3>" + results_tables(run)
    for name in ("meta.json", "data.json", "results.json"):
        if name in run.problems:
            body += h.note(run.problems[name])
    return body


def results_tables(run: RunData) -> str:
    res = run.results
    best, final, test = _table(res, "best"), _table(res, "final"), _table(res, "test")
    if not (best or final or test):
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
    return out


def curves_section(run: RunData) -> str:
    if not run.metrics:
        return _absent(run, "metrics.jsonl", "no learning curves")
    groups = dict(sorted(rf.metric_groups(run).items()))
    caption = ("Loss" + "".join(f", {base}" for base in groups) + " per epoch: points, and their "
               "moving average")
    return h.figures([h.figure("fig-curves", render(rf.curves_figure, run, groups), caption,
                               wide=bool(groups))])


def lr_section(run: RunData) -> str:
    if not run.series("lr")[0]:
        return _absent(run, "metrics.jsonl", "no learning rate was recorded")
    return h.figures([h.figure("fig-lr", render(rf.lr_figure, run),
                               "Learning rate of each epoch, as the schedule ran")])


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
            figs.append(h.figure("fig-layers", render(rf.layer_bars_figure, snaps, shown), caption,
                                 wide=len(shown) > 1))
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
            figs.append(h.figure("fig-epochs", render(rf.layer_epochs_figure, run.stats, during),
                                 caption, wide=len(during) > 1))
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
    return _classification(run, y_true, y_pred)


def _classification(run: RunData, y_true: Any, y_pred: Any) -> str:
    import numpy as np
    from sklearn.metrics import confusion_matrix

    y_true = y_true.reshape(-1).astype(np.int64)
    y_pred = y_pred.reshape(-1).astype(np.int64)
    classes = run.data.get("classes")
    n = int(max(y_true.max(), y_pred.max())) + 1
    if isinstance(classes, list) and len(classes) >= n:
        labels = [str(c) for c in classes]
    else:
        labels = [str(i) for i in range(n)]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    acc = float((y_true == y_pred).mean())
    fig = h.figure("fig-confusion", render(rf.confusion_figure, matrix, labels),
                   f"Confusion matrix on the test split ({len(y_true)} samples, "
                   f"accuracy {acc:.4f})")
    support = matrix.sum(axis=1)
    rows = [(lab, int(support[i]), float(matrix[i, i] / support[i]) if support[i] else None)
            for i, lab in enumerate(labels)]
    return h.figures([fig]) + ("<details><summary>Per-class recall</summary>"
                               + h.table(["class", "support", "recall"], rows) + "</details>")


def _regression(y_true: Any, y_pred: Any) -> str:
    import numpy as np

    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    names = [f"target {k}" for k in range(y_true.shape[1])]
    figs = [h.figure("fig-truth", render(rf.truth_figure, y_true, y_pred, names),
                     f"Predicted against true on the test split ({len(y_true)} samples)"),
            h.figure("fig-residuals", render(rf.residual_figure, y_true, y_pred, names),
                     "Residuals against predicted values on the test split")]
    err = y_true - y_pred
    rows = [(name, float(np.abs(err[:, k]).mean()), float(np.sqrt((err[:, k] ** 2).mean())))
            for k, name in enumerate(names)]
    return h.figures(figs) + h.table(["target", "MAE", "RMSE"], rows)


def config_section(run: RunData) -> str:
    if not run.config_text:
        return _absent(run, "config.toml", "the resolved config is unknown")
    lines = run.config_text.count("\n") + 1
    return (f"<details><summary>config.toml ({lines} lines)</summary>"
            f"<pre>{h.esc(run.config_text)}</pre></details>")


def render_run_report(run: RunData) -> str:
    """The HTML of one run's report."""
    sections = [
        ("summary", "Summary", summary_section(run)),
        ("curves", "Learning curves", curves_section(run)),
        ("lr", "Learning-rate schedule", lr_section(run)),
        ("layers", "Layer statistics", layers_section(run)),
        ("doctor", "Doctor's findings", doctor_section(run)),
        ("predictions", "Test predictions", predictions_section(run)),
        ("config", "Config", config_section(run)),
    ]
    status = run.meta.get("status", "unknown status")
    task = run.task or "unknown task"
    return h.page(f"Run {run.name}", f"{task} · {status}", sections)


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained ``report.html`` of a run directory.

    Args:
        run_dir: a run directory; files it lacks get a note in their section.
        out: where to write; default ``run_dir/report.html``.

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
    h.write_page(path, lambda: render_run_report(run))
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

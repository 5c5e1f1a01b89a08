"""How well each class is told apart: per-class precision, recall, F1 and support, and the ROC
and precision-recall curves (binary: the positive class; multiclass: one class against the rest).

Computed from a run's test predictions (``predictions.npz``: ``y_true``, ``y_pred``, ``proba``)
with ``sklearn.metrics``; :func:`per_class_scores` is the one place the report gets them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trainwell.report.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# at most this many classes get a curve of their own on the ROC and PR figures
MAX_CURVES = 10


def per_class_scores(y_true: Any, y_pred: Any, n_classes: int) -> list[dict[str, float]]:
    """Precision, recall, F1 and support of each class ``0 .. n_classes - 1``.

    A class never predicted has precision 0 and one absent from ``y_true`` has recall 0 (and
    support 0), as ``sklearn.metrics.precision_recall_fscore_support`` with ``zero_division=0``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(range(n_classes)),
                                                 zero_division=0)
    return [{"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
             "support": int(s[i])} for i in range(n_classes)]


def curve_classes(y_true: Any, n_classes: int) -> list[int]:
    """The classes that get a curve: binary, the positive class (1); multiclass, each class
    present in ``y_true`` with at least one sample of another class too (the
    :data:`MAX_CURVES` most frequent, in class order)."""
    import numpy as np

    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=n_classes)
    n = len(y_true)
    if n_classes == 2:
        return [1] if 0 < counts[1] < n else []
    ok = [k for k in range(n_classes) if 0 < counts[k] < n]
    return sorted(sorted(ok, key=lambda k: (-counts[k], k))[:MAX_CURVES])


def roc_figure(y_true: Any, proba: Any, labels: Sequence[str]) -> Figure:
    """ROC curve of each class against the rest (binary: the positive class), AUC in the
    legend, the chance diagonal dashed."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = new_figure(5.2, 4.2, layout="constrained")
    y_true = np.asarray(y_true, dtype=np.int64)
    for i, k in enumerate(curve_classes(y_true, len(labels))):
        fpr, tpr, _ = roc_curve(y_true == k, proba[:, k])
        auc = roc_auc_score(y_true == k, proba[:, k])
        ax.plot(fpr, tpr, color=f"C{i % 10}", lw=1.6, label=f"{labels[k]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="lower right", fontsize=9)
    return fig


def pr_figure(y_true: Any, proba: Any, labels: Sequence[str]) -> Figure:
    """Precision-recall curve of each class against the rest, average precision in the legend;
    a class's dotted line is its share of the samples (a classifier that guesses)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = new_figure(5.2, 4.2, layout="constrained")
    y_true = np.asarray(y_true, dtype=np.int64)
    for i, k in enumerate(curve_classes(y_true, len(labels))):
        precision, recall, _ = precision_recall_curve(y_true == k, proba[:, k])
        ap = average_precision_score(y_true == k, proba[:, k])
        color = f"C{i % 10}"
        ax.plot(recall, precision, color=color, lw=1.6, drawstyle="steps-post",
                label=f"{labels[k]} (AP {ap:.3f})")
        ax.axhline(float((y_true == k).mean()), color=color, ls=":", lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.05)
    ax.legend(loc="lower left", fontsize=9)
    return fig


def auc_scores(y_true: Any, proba: Any, n_classes: int) -> dict[int, tuple[float, float]]:
    """Class -> (ROC-AUC, average precision) of that class against the rest, for each class
    that gets a curve (:func:`curve_classes`)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true, dtype=np.int64)
    return {k: (float(roc_auc_score(y_true == k, proba[:, k])),
                float(average_precision_score(y_true == k, proba[:, k])))
            for k in curve_classes(y_true, n_classes)}

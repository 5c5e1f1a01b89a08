"""Data checks (lecture 004: look at what the loader emits; lecture 002: preprocessing, leakage)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell.data.pipeline import AUTO_MAX_ABS_MEAN, AUTO_STD_RANGE
from trainwell.diagnose.balance import (
    BALANCED_METRIC,
    CLASS_WEIGHTS,
    LABEL_SMOOTHING,
    imbalance_ratio,
    is_imbalanced,
    majority_rate,
)
from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding

SIGNAL_ADVICE = (
    "check the labels: are they shuffled, misaligned with the rows, or from another file? "
    "(lecture 004: visualize what the loader emits)"
)
STANDARDIZE = "standardize the inputs (z-score fitted on the training split; lecture 000/002)"
STANDARDIZE_TARGET = (
    "standardize the target: data.target_scale = \"standardize\" (or \"auto\", the default) "
    "trains on (y - mean) / std of the training split and gives predictions, RMSE and MAE back "
    "in the target's units; from Python, standardize y with the training mean and std and undo "
    "it on the predictions"
)
#: a regression target is far from unit scale (a failure, not a warning) beyond these; it is
#: off unit scale where data.target_scale = "auto" would standardize it
TARGET_FAR_STD = (1e-3, 1e3)
TARGET_FAR_MEAN = 1e3


def _features(X: torch.Tensor) -> torch.Tensor:
    """(n, features): per-feature columns for tables, per-channel for images."""
    if X.ndim <= 2:
        return X.reshape(len(X), -1)
    return X.transpose(0, 1).reshape(X.shape[1], -1).T


def check_finite(p: Problem) -> Finding:
    bad_x = int((~torch.isfinite(p.X)).sum())
    bad_y = int((~torch.isfinite(p.y.float())).sum())
    if bad_x or bad_y:
        return Finding(
            "data.finite",
            "fail",
            "NaN or inf values in the training data",
            f"{bad_x} non-finite input values and {bad_y} non-finite targets.",
            {"nonfinite_X": bad_x, "nonfinite_y": bad_y},
            [
                "impute missing values (e.g. preprocess = ['impute', 'standardize']) or drop the "
                "rows"
            ],
        )
    return Finding("data.finite", "pass", "no NaN or inf in inputs and targets")


def check_scale(p: Problem) -> Finding:
    F = _features(p.X)
    F = torch.where(torch.isfinite(F), F, torch.zeros_like(F)).double()
    mean, std = F.mean(0), F.std(0, unbiased=False)
    live = std > 1e-12
    ev: dict[str, Any] = {
        "mean": [round(v, 4) for v in mean.tolist()[:64]],
        "std": [round(v, 4) for v in std.tolist()[:64]],
    }
    if not live.any():
        return Finding(
            "data.scale",
            "fail",
            "every input feature is constant",
            "",
            ev,
            ["check the loader: the inputs carry no information"],
        )
    s = std[live]
    ratio = (s.max() / s.min()).item()
    max_std, max_mean = s.max().item(), mean.abs().max().item()
    ev.update(std_ratio=ratio, max_std=max_std, max_abs_mean=max_mean)
    detail = (
        f"feature std ranges {s.min().item():.3g} .. {max_std:.3g} (ratio {ratio:.3g}); "
        f"largest |mean| {max_mean:.3g}."
    )
    if ratio > 1e3 or max_std > 1e2 or max_mean > 1e2:
        return Finding(
            "data.scale",
            "fail",
            "inputs are not standardized: features on very different scales",
            detail,
            ev,
            [STANDARDIZE],
        )
    if ratio > 30 or max_std > 10 or max_mean > 10:
        return Finding(
            "data.scale",
            "warn",
            "inputs are far from zero mean, unit variance",
            detail,
            ev,
            [STANDARDIZE],
        )
    return Finding("data.scale", "pass", "inputs are on comparable scales", detail, ev)


def check_target_scale(p: Problem) -> Finding | None:
    """Regression: is the target the model trains on near zero mean and unit variance?

    An output layer starts near 0 with weights sized for unit-scale values; a target around
    1e6 makes the initial loss ~1e12, and the gradient steps, the learning rate and the
    expected initial loss are all off by the target's scale.
    """
    if p.task != "regression":
        return None
    Y = p.y.double().reshape(len(p.y), -1)
    Y = torch.where(torch.isfinite(Y), Y, torch.zeros_like(Y))
    mean, std = Y.mean(0), Y.std(0, unbiased=False)
    ev: dict[str, Any] = {
        "mean": [float(f"{v:.6g}") for v in mean.tolist()[:16]],
        "std": [float(f"{v:.6g}") for v in std.tolist()[:16]],
    }
    worst = int(torch.argmax(torch.maximum(mean.abs(), std)))
    m, sd = mean[worst].item(), std[worst].item()
    m = 0.0 if abs(m) < 1e-6 * max(sd, 1.0) else m  # float round-off of a centred target
    which = f"target {worst} " if Y.shape[1] > 1 else "the target "
    detail = f"{which}has mean {m:.4g} and std {sd:.4g} on the training split"
    lo, hi = AUTO_STD_RANGE
    off = (std < lo) | (std > hi) | (mean.abs() > AUTO_MAX_ABS_MEAN)
    if not bool(off.any()):
        return Finding("data.target_scale", "pass", "the regression target is near unit scale",
                       detail + ".", ev)
    far_lo, far_hi = TARGET_FAR_STD
    far = (std < far_lo) | (std > far_hi) | (mean.abs() > TARGET_FAR_MEAN)
    scale = max(abs(m), sd)
    ev.update(column=worst, scale=scale)
    detail += (
        f": the model must learn outputs of about {scale:.3g} from a start near 0, and the "
        f"L2 loss of all-zero outputs is {float((Y ** 2).mean()):.3g} instead of about 1"
        + ("." if scale >= 1 else "; its gradients are tiny.")
    )
    if bool(far.any()):
        return Finding("data.target_scale", "fail",
                       f"the regression target is not standardized (scale {scale:.3g})", detail,
                       ev, [STANDARDIZE_TARGET])
    return Finding("data.target_scale", "warn",
                   f"the regression target is far from unit scale (scale {scale:.3g})", detail,
                   ev, [STANDARDIZE_TARGET])


def check_constant(p: Problem) -> Finding:
    F = _features(p.X)
    const = (F.std(0, unbiased=False) <= 1e-12).nonzero().flatten().tolist()
    if const:
        return Finding(
            "data.constant",
            "warn",
            f"{len(const)} constant input feature(s)",
            f"features {const[:10]}{' ...' if len(const) > 10 else ''} take one value on the "
            "training split.",
            {"constant": const, "n_features": F.shape[1]},
            ["drop constant features; they carry no information"],
        )
    return Finding(
        "data.constant", "pass", "no constant features", evidence={"n_features": F.shape[1]}
    )


def check_balance(p: Problem) -> Finding | None:
    if p.task == "regression":
        return None
    counts = torch.bincount(p.y.reshape(-1).long(), minlength=p.n_classes or 2).tolist()
    present = [c for c in counts if c > 0]
    ratio = imbalance_ratio(counts)
    ev = {"class_counts": counts, "imbalance_ratio": ratio}
    if len(present) < len(counts):
        return Finding(
            "data.balance",
            "warn",
            "some classes have no training example",
            f"class counts {counts}.",
            ev,
            ["check the labels and the split (stratify = true)"],
        )
    if ratio > 10:
        rate = majority_rate(counts)
        major = counts.index(max(counts))
        ev["majority_rate"] = rate
        return Finding(
            "data.balance",
            "warn",
            f"classes are imbalanced ({ratio:.0f}:1): accuracy is misleading",
            f"class counts {counts}: always answering class {major} is {rate:.1%} accurate "
            "and learns nothing; the doctor judges signal by balanced accuracy and the curves "
            "by macro F1.",
            ev,
            [
                CLASS_WEIGHTS,
                BALANCED_METRIC,
                LABEL_SMOOTHING,
                "keep the split stratified (data.split.stratify = true) so that every split "
                "holds the rare classes",
            ],
        )
    return Finding(
        "data.balance", "pass", "classes are reasonably balanced", f"class counts {counts}.", ev
    )


def _row_keys(X: torch.Tensor) -> list[bytes]:
    arr = np.round(X.reshape(len(X), -1).double().cpu().numpy(), 6)
    arr = np.ascontiguousarray(arr + 0.0)  # -0.0 -> 0.0
    return [row.tobytes() for row in arr]


def check_leakage(p: Problem) -> Finding | None:
    """Rows of the val/test splits that also appear in the training split."""
    held = {k: v for k, v in (("val", p.val), ("test", p.test)) if v is not None}
    if not held:
        return None
    train = set(_row_keys(p.X))
    ev: dict[str, Any] = {}
    worst = 0.0
    for name, (X, _y) in held.items():
        dup = sum(k in train for k in _row_keys(X))
        ev[f"{name}_duplicates"] = dup
        ev[f"{name}_rows"] = len(X)
        worst = max(worst, dup / len(X))
    detail = (
        ", ".join(f"{ev[f'{n}_duplicates']} of {ev[f'{n}_rows']} {n} rows" for n in held)
        + " also appear in the training split."
    )
    ev["worst_fraction"] = worst
    advice = [
        "drop duplicate rows before splitting, or split by group, so held-out scores are honest"
    ]
    if worst > 0.05:
        return Finding(
            "data.leakage",
            "fail",
            f"train/test leakage: {worst:.0%} of held-out rows are in train",
            detail,
            ev,
            advice,
        )
    if worst > 0:
        return Finding(
            "data.leakage",
            "warn",
            "a few held-out rows duplicate training rows",
            detail,
            ev,
            advice,
        )
    return Finding("data.leakage", "pass", "no held-out row duplicates a training row", evidence=ev)


def _correlation_ratio(x: np.ndarray, y: np.ndarray) -> float:
    """eta^2: share of a feature's variance explained by the class (1 = the class determines it)."""
    total = ((x - x.mean()) ** 2).sum()
    if total <= 0:
        return 0.0
    between = sum(((x[y == c].mean() - x.mean()) ** 2) * (y == c).sum() for c in np.unique(y))
    return float(between / total)


def check_target_leak(p: Problem) -> Finding | None:
    """A single feature that alone (almost) determines the target: the target leaked into X."""
    if p.X.ndim > 2:
        return None
    F = p.X.reshape(len(p.X), -1).double().cpu().numpy()
    y = p.y.double().cpu().numpy().reshape(len(F), -1)[:, 0]
    n = min(len(F), 4000)
    F, y = F[:n], y[:n]
    scores = []
    for j in range(F.shape[1]):
        col = F[:, j]
        if not np.isfinite(col).all() or col.std() == 0:
            scores.append(0.0)
        elif p.task == "regression":
            scores.append(float(abs(np.corrcoef(col, y)[0, 1])) if y.std() > 0 else 0.0)
        else:
            scores.append(_correlation_ratio(col, y))
    j = int(np.argmax(scores))
    ev = {
        "feature": j,
        "score": scores[j],
        "measure": "|corr|" if p.task == "regression" else "eta^2",
    }
    if scores[j] > 0.99:
        return Finding(
            "data.target_leak",
            "fail",
            f"feature {j} alone determines the target",
            f"{ev['measure']} between feature {j} and the target is {scores[j]:.4f}; no real "
            "feature predicts a label that well.",
            ev,
            [f"remove feature {j} (a copy or function of the label) from the inputs"],
        )
    return Finding(
        "data.target_leak", "pass", "no single feature reproduces the target", evidence=ev
    )


def check_signal(p: Problem, seed: int = 0) -> Finding:
    """Can a simple model (k-NN, linear) predict the labels of held-out training rows at all?"""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(len(p.X), 3000)
    X = p.X[:n].reshape(n, -1).double().cpu().numpy()
    X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)
    y = p.y[:n].cpu().numpy()
    if p.task == "regression":
        y = y.reshape(n, -1)[:, 0]
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=seed)
        scores = []
        for est in (KNeighborsRegressor(5), Ridge(1.0)):
            est = make_pipeline(StandardScaler(), est).fit(Xa, ya)
            scores.append(float(est.score(Xb, yb)))
        best = max(scores)
        ev = {"heldout_r2": best, "n": n}
        detail = (
            f"best held-out R^2 of k-NN and ridge on the training rows: {best:.3f} (0 = no signal)."
        )
        status = "fail" if best < 0.02 else "pass"
    elif is_imbalanced(np.bincount(y.reshape(-1).astype(np.int64)).tolist()):
        return _signal_balanced(X, y.reshape(-1).astype(np.int64), seed)
    else:
        y = y.reshape(-1).astype(np.int64)
        strat = y if np.bincount(y).min() >= 2 else None
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=strat)
        scores = []
        for est in (KNeighborsClassifier(5), LogisticRegression(max_iter=200)):
            est = make_pipeline(StandardScaler(), est).fit(Xa, ya)
            scores.append(float(est.score(Xb, yb)))
        best = max(scores)
        chance = float(np.bincount(yb).max() / len(yb))
        margin = max(0.03, 3 * math.sqrt(chance * (1 - chance) / len(yb)))
        ev = {"heldout_accuracy": best, "chance": chance, "margin": margin, "n": n}
        detail = (
            "best held-out accuracy of k-NN and logistic regression on the training rows: "
            f"{best:.3f}, chance (majority class) {chance:.3f}."
        )
        status = "fail" if best <= chance + margin else "pass"
    if status == "fail":
        return Finding(
            "data.signal",
            "fail",
            "the labels look unrelated to the inputs",
            detail,
            ev,
            [SIGNAL_ADVICE],
        )
    return Finding("data.signal", "pass", "simple models find signal in the data", detail, ev)


def _signal_balanced(X: np.ndarray, y: np.ndarray, seed: int) -> Finding:
    """The signal check on imbalanced classes, by balanced accuracy (mean per-class recall).

    Accuracy cannot tell a model from "always the majority class" there (99% on a 99:1 split
    either way). Every training row is predicted once by stratified cross-validation, so that
    each rare row counts; chance is 1 / C for any constant answer, and the margin is three
    standard deviations of a guess's balanced accuracy with these class counts.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(y)
    present = counts[counts > 0]
    n_classes = len(present)
    chance = 1.0 / n_classes
    ratio, rate = imbalance_ratio(counts.tolist()), majority_rate(counts.tolist())
    ev: dict[str, Any] = {"metric": "balanced_accuracy", "chance": chance, "majority_rate": rate,
                          "imbalance_ratio": ratio, "class_counts": counts.tolist(), "n": len(y)}
    misleading = (f"classes are imbalanced ({ratio:.0f}:1), so accuracy is misleading: always "
                  f"answering the majority class scores {rate:.3f}")
    folds = int(min(3, present.min()))
    if folds < 2:
        ev["heldout_balanced_accuracy"] = None
        return Finding("data.signal", "warn", "too few rows of a class to test for signal",
                       f"{misleading}; a class has a single training row, so no held-out row "
                       "of it is left to score.", ev, [CLASS_WEIGHTS])
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    balanced, accuracy = [], []
    for est in (KNeighborsClassifier(5), LogisticRegression(max_iter=200)):
        pred = cross_val_predict(make_pipeline(StandardScaler(), est), X, y, cv=cv)
        balanced.append(float(balanced_accuracy_score(y, pred)))
        accuracy.append(float(accuracy_score(y, pred)))
    best = max(balanced)
    var = sum(chance * (1 - chance) / c for c in present) / n_classes**2
    margin = max(0.03, 3 * math.sqrt(var))
    ev.update(heldout_balanced_accuracy=best, heldout_accuracy=accuracy[balanced.index(best)],
              margin=margin, folds=folds)
    detail = (f"{misleading}. Best cross-validated balanced accuracy (mean per-class recall) of "
              f"k-NN and logistic regression on the training rows: {best:.3f}, chance "
              f"{chance:.3f} (margin {margin:.3f}).")
    if best <= chance + margin:
        return Finding("data.signal", "fail", "the labels look unrelated to the inputs", detail,
                       ev, [SIGNAL_ADVICE])
    return Finding("data.signal", "pass",
                   "simple models find signal in the data (by balanced accuracy)", detail, ev)


def batch_picture(p: Problem, out_dir: str | Path, n: int = 32) -> Finding | None:
    """For image inputs: save a training batch exactly as the model receives it (lecture 004).

    The batch is drawn like a shuffled loader's (seeded), after preprocessing. Every image is
    shown on the batch's shared value range, so a badly scaled image or channel stays visible
    (a per-image rescaling would hide it); the label is the title of each image.
    """
    if p.X.ndim != 4:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(p.seed)
    idx = torch.randperm(len(p.X), generator=gen)[:n]
    imgs = p.X[idx].float().cpu()
    labels = p.y[idx].cpu().tolist()
    lo, hi = imgs.min().item(), imgs.max().item()
    k = len(imgs)
    cols = min(8, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    shown_all = ((imgs - lo) / (hi - lo + 1e-12)).clamp(0, 1)  # one shared range, for display
    for i, ax in enumerate(axes.flat[:k]):
        img = shown_all[i]
        if img.shape[0] == 3:
            ax.imshow(img.permute(1, 2, 0).numpy())
        else:  # grey, or the first channel of another layout
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(str(labels[i]), fontsize=7)
    fig.suptitle(f"values {lo:.3g} .. {hi:.3g} (shared grey scale)", fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / "doctor_batch.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    ch = imgs.transpose(0, 1).reshape(imgs.shape[1], -1)
    return Finding(
        "data.batch",
        "pass",
        "picture of a training batch saved",
        f"look at {path.name}: {k} images and their labels as the model receives them "
        f"(values {lo:.3g} .. {hi:.3g}; per-channel mean "
        f"{[round(v, 3) for v in ch.mean(1).tolist()]}, std "
        f"{[round(v, 3) for v in ch.std(1, unbiased=False).tolist()]}).",
        {
            "path": path.name,
            "shape": list(imgs.shape),
            "rows": idx.tolist(),
            "labels": labels,
            "value_range": [lo, hi],
            "channel_mean": ch.mean(1).tolist(),
            "channel_std": ch.std(1, unbiased=False).tolist(),
        },
        ["check that the digits/objects are recognisable and that each title is the right label"],
    )


def run_data_checks(p: Problem, out_dir: str | Path | None = None) -> list[Finding]:
    found = [check_finite(p)]
    if found[0].status == "fail":
        return found
    for f in (
        check_scale(p),
        check_target_scale(p),
        check_constant(p),
        check_balance(p),
        check_leakage(p),
        check_target_leak(p),
        check_signal(p, p.seed),
    ):
        if f is not None:
            found.append(f)
    if out_dir is not None:
        pic = batch_picture(p, out_dir)
        if pic is not None:
            found.append(pic)
    return found

"""Does a pretrained model help? A linear probe on its features against one on a scratch model's.

Lecture 002's transfer recipe starts from "use the CNN as a feature extractor": the features a
network feeds its last layer, with a linear classifier on top. How well such a probe does on a
slice of the new training data, next to the same probe on the features of the same architecture
at its random (scratch) initialization, measures how similar the source is to the new task. A
pretrained model whose probe loses to the scratch one transfers *negatively*: its features are
worse for the new labels than random ones, and fine-tuning starts from a worse place than
scratch. ``transfer = "auto"`` (``trainwell.after``) reads the same measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainwell.diagnose.report import Finding
from trainwell.nn.parts import head_layer

#: the doctor warns when the pretrained probe is not this far above the scratch one
SIMILAR_MARGIN = 0.02
#: the most rows of the training split a measurement looks at
SLICE_ROWS = 300
#: cross-validation repeats (each with other folds): a steadier mean on a few rows
REPEATS = 3


def head_features(model: nn.Module, X: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """What ``model`` feeds its head (its last layer) for each row of ``X``, in eval mode."""
    _, head = head_layer(model)
    seen: list[torch.Tensor] = []

    def grab(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
        seen.append(inputs[0].detach().flatten(1).float().cpu())

    handle = head.register_forward_pre_hook(grab)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                model(X[i : i + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(seen).numpy().astype(np.float64)


def _slice(X: torch.Tensor, y: torch.Tensor, rows: int, seed: int) -> tuple[Any, np.ndarray]:
    """At most ``rows`` rows, drawn per class in proportion (stratified), from ``seed``."""
    labels = y.cpu().numpy().astype(np.int64)
    if len(labels) <= rows:
        return X, labels
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(labels)), train_size=rows, stratify=labels,
                               random_state=seed)
    keep = np.sort(keep)
    return X[torch.as_tensor(keep)], labels[keep]


def probe_scores(
    models: dict[str, nn.Module], X: torch.Tensor, y: torch.Tensor, *, seed: int = 0,
    rows: int = SLICE_ROWS,
) -> dict[str, Any]:
    """Cross-validated linear-probe accuracy on each model's head features, on one slice.

    The probe is scikit-learn's ``LogisticRegression`` on standardized features, scored by
    stratified k-fold cross-validation (k = up to 5, at most the rows of the rarest class),
    repeated :data:`REPEATS` times with other folds; every model sees the same folds.

    Returns:
        ``{"rows", "folds", "min_per_class", <name>: accuracy ...}``; the accuracies are None
        when a class has fewer than two rows (nothing to hold out).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xs, labels = _slice(X, y, rows, seed)
    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    present = counts[counts > 0]
    smallest = int(present.min()) if len(present) else 0
    out: dict[str, Any] = {"rows": len(labels), "min_per_class": smallest}
    folds = min(5, smallest)
    out["folds"] = folds if folds >= 2 and len(present) >= 2 else 0
    for name, model in models.items():
        if not out["folds"]:
            out[name] = None
            continue
        feats = head_features(model, Xs)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.5))
        cv = RepeatedStratifiedKFold(n_splits=out["folds"], n_repeats=REPEATS,
                                     random_state=seed)
        out[name] = float(cross_val_score(probe, feats, labels, cv=cv).mean())
    return out


def check_transfer(pretrained: nn.Module, scratch: nn.Module, X: torch.Tensor, y: torch.Tensor,
                   *, seed: int = 0, source: str = "the pretrained weights") -> Finding:
    """``transfer.negative``: the pretrained features' probe against the scratch features'."""
    scores = probe_scores({"pretrained": pretrained, "scratch": scratch}, X, y, seed=seed)
    evidence = {k: scores[k] for k in ("rows", "folds", "min_per_class", "pretrained", "scratch")}
    if scores["pretrained"] is None:
        return Finding(
            "transfer.negative", "pass",
            "transfer not measured: a class has fewer than two training rows",
            f"{scores['rows']} training rows, {scores['min_per_class']} in the rarest class; the "
            "probe needs two per class to hold one out",
            evidence,
            ["label a second example of each class to measure whether the source helps"],
        )
    pre, scr = scores["pretrained"], scores["scratch"]
    detail = (f"a linear probe on the features of {source} reaches {pre:.1%} on "
              f"{scores['rows']} training rows ({scores['folds']}-fold cross-validation); the "
              f"same probe on the same model at its scratch initialization reaches {scr:.1%}")
    if pre < scr - SIMILAR_MARGIN:
        return Finding(
            "transfer.negative", "warn",
            "negative transfer: the pretrained features do worse than random ones",
            detail + ": the source task does not help this one and may hurt it",
            evidence,
            ["train from scratch (remove model.init_from), or a source closer to this data",
             "lecture 002: with little data and a very different dataset, try a linear "
             "classifier on features from earlier stages"],
        )
    if scr <= pre < scr + SIMILAR_MARGIN:
        # transfer = "auto" counts this source as similar (its probe is not below scratch's):
        # the warning says the gain is small, not that the source is very different
        return Finding(
            "transfer.negative", "warn",
            "the pretrained features do barely better than random ones",
            detail + f": less than {SIMILAR_MARGIN * 100:.0f} points better; transfer = \"auto\" "
            "counts the source as similar, but the gain is small",
            evidence,
            ["compare with a run from scratch (remove model.init_from): lecture 002 warns that "
             "pretraining \"might not always be necessary\""],
        )
    if pre < scr:
        return Finding(
            "transfer.negative", "warn",
            "the pretrained features do no better than random ones",
            detail + ": the source looks very different from this data (transfer = \"auto\" "
            "counts it so)",
            evidence,
            ["with enough data, fine-tune every layer (transfer = \"finetune\") or train from "
             "scratch; a linear probe will not beat scratch here"],
        )
    return Finding("transfer.negative", "pass",
                   f"the pretrained features help: probe {pre:.1%} vs scratch {scr:.1%}",
                   detail, evidence)


__all__ = ["SIMILAR_MARGIN", "check_transfer", "head_features", "probe_scores"]

"""Class imbalance: when accuracy misleads, and the balanced numbers the doctor judges by instead.

On a 99:1 split a model that always answers the majority class scores 99% accuracy and has
learned nothing. From :data:`IMBALANCED` (majority : minority) on, the doctor's signal check
scores simple models by balanced accuracy (the mean of the per-class recalls; chance is 1 / C
for any constant answer) and the curve verdict looks at macro F1 beside the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

#: majority : minority class ratio from which accuracy is judged misleading
IMBALANCED = 3.0
#: macro F1 within this of the majority-class answer's counts as "answers the majority class"
MAJORITY_MARGIN = 0.05
CLASS_WEIGHTS = (
    "weight the classes in the loss inversely to their frequency: train.class_weight = "
    "\"balanced\" (or a table {label = weight}; Trainer(class_weight=\"balanced\") from Python), "
    "or oversample the minority classes"
)
BALANCED_METRIC = (
    "judge and select the model by a balanced metric, not accuracy: train.metrics = "
    "[\"balanced_accuracy\"] and train.early_stopping.metric = \"val_balanced_accuracy\" "
    "(or \"val_f1_macro\", always logged)"
)
#: class weights raise the rare classes' probabilities beyond their frequency; smoothing tempers
LABEL_SMOOTHING = (
    "class weights push probabilities towards the rare classes beyond their frequency: "
    "train.label_smoothing = 0.1 tempers overconfident outputs, and train.metrics = "
    "[\"ece\"] measures the calibration"
)


def imbalance_ratio(counts: Sequence[int]) -> float:
    """Largest over smallest count of the classes present (1.0 for fewer than two)."""
    present = [int(c) for c in counts if c > 0]
    return max(present) / min(present) if len(present) > 1 else 1.0


def is_imbalanced(counts: Sequence[int]) -> bool:
    """True when accuracy misleads: the classes present are :data:`IMBALANCED` : 1 or worse."""
    return imbalance_ratio(counts) >= IMBALANCED


def majority_rate(counts: Sequence[int]) -> float:
    """The accuracy of always answering the most frequent class."""
    total = sum(int(c) for c in counts)
    return max(int(c) for c in counts) / total if total else 0.0


def majority_f1_macro(counts: Sequence[int]) -> float:
    """The macro F1 of always answering the most frequent class, over the classes present.

    That class gets precision p (its share) and recall 1, so F1 2p / (1 + p); every other class
    gets 0. On a 99:1 split: 0.4975.

    Example:
        >>> round(majority_f1_macro([990, 10]), 4)
        0.4975
    """
    present = [int(c) for c in counts if c > 0]
    if not present:
        return 0.0
    p = max(present) / sum(present)
    return 2 * p / (1 + p) / len(present)


__all__ = [
    "BALANCED_METRIC",
    "CLASS_WEIGHTS",
    "IMBALANCED",
    "LABEL_SMOOTHING",
    "MAJORITY_MARGIN",
    "imbalance_ratio",
    "is_imbalanced",
    "majority_f1_macro",
    "majority_rate",
]

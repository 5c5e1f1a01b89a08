"""Did domain adaptation help? The verdict on a domain-adversarial run, in plain words.

Ganin & Lempitsky's goal is a label head that stays accurate on the source while the domain
classifier is driven to chance (0.5): features that do not tell the domains apart. With target
labels kept for evaluation and a source-only baseline (``[domain] baseline = true``: the same
run with the gradient reversal off), the verdict compares target accuracy; without them it can
only say what the domain classifier shows.
"""

from __future__ import annotations

import math
from typing import Any

#: target accuracy gains (in points) below this are "no clear change"
MIN_GAIN = 0.01
#: the source accuracy may drop this much (lecture: keep the label task) before a warning
SOURCE_DROP = 0.02
#: a domain classifier this close to 0.5 cannot tell the domains apart
CHANCE_BAND = 0.1


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None


def domain_verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """``{"status": "pass" | "warn" | "fail" | "info", "text": ...}`` from
    :func:`trainwell.heads_run.domain_summary`'s numbers.

    Example:
        >>> domain_verdict({"source_accuracy": 0.99, "target_accuracy": 0.91,
        ...                 "domain_accuracy": 0.55, "baseline": {"source_accuracy": 0.99,
        ...                 "target_accuracy": 0.73}})["status"]
        'pass'
    """
    src, tgt = _num(summary.get("source_accuracy")), _num(summary.get("target_accuracy"))
    dom = _num(summary.get("domain_accuracy"))
    base = summary.get("baseline") or {}
    b_src, b_tgt = _num(base.get("source_accuracy")), _num(base.get("target_accuracy"))
    parts: list[str] = []
    status = "info"
    if dom is not None:
        if abs(dom - 0.5) <= CHANCE_BAND:
            parts.append(f"the domain classifier is near chance ({dom:.2f}): the features no "
                         "longer tell source from target")
        else:
            parts.append(f"the domain classifier still tells the domains apart ({dom:.2f}, "
                         "0.5 is the goal): raise the reversal strength or train longer")
    if tgt is not None and b_tgt is not None:
        gain = tgt - b_tgt
        if gain >= MIN_GAIN:
            status = "pass"
            parts.insert(0, f"adaptation helped: target accuracy {b_tgt:.1%} source-only -> "
                            f"{tgt:.1%} adapted ({gain * 100:+.1f} points)")
        elif gain <= -MIN_GAIN:
            status = "fail"
            parts.insert(0, f"adaptation hurt: target accuracy {b_tgt:.1%} source-only -> "
                            f"{tgt:.1%} adapted ({gain * 100:+.1f} points); try a smaller "
                            "domain.grl_lambda or more source data")
        else:
            status = "warn"
            parts.insert(0, f"adaptation made no clear difference: target accuracy {b_tgt:.1%} "
                            f"source-only, {tgt:.1%} adapted")
        if src is not None and b_src is not None and b_src - src > SOURCE_DROP:
            status = "warn" if status == "pass" else status
            parts.append(f"the source accuracy dropped {100 * (b_src - src):.1f} points "
                         f"({b_src:.1%} -> {src:.1%})")
    elif tgt is not None:
        parts.insert(0, f"target accuracy {tgt:.1%} (run with domain.baseline = true to compare "
                        "with a source-only model)")
    else:
        parts.append("the target data has no labels, so target accuracy is unknown")
    text = "; ".join(parts)
    return {"status": status, "text": text[:1].upper() + text[1:] + "."}


__all__ = ["domain_verdict"]

"""The ``report.html`` of an ensemble directory: each member, the members' mean and the
ensemble on the test split (accuracy, log-loss, expected calibration error), and a reliability
diagram. ``trainwell report runs/<ensemble>`` writes it again from the members' files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trainwell.report.html as h
from trainwell.after.ensemble import ensemble_results, read_ensemble
from trainwell.report.figures import new_figure, panel_title, render

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

KIND_TEXT = {
    "members": "independently trained members",
    "snapshot": "snapshots of one run with cosine restarts",
    "study": "the best trials of a study",
}


def _metric_names(results: dict[str, Any]) -> list[str]:
    return [k for k in results["ensemble"]]


def results_section(results: dict[str, Any]) -> str:
    names = _metric_names(results)
    rows = [[m["name"], m["dir"], *(m.get(n) for n in names)] for m in results["members"]]
    rows.append(["members' mean", "", *(results["members_mean"].get(n) for n in names)])
    rows.append([f"ensemble ({results['method']})", "", *(results["ensemble"].get(n)
                                                         for n in names)])
    lines = [h.table(["member", "folder", *names], rows)]
    if "log_loss" in names:
        gain = results["members_mean"]["log_loss"] - results["ensemble"]["log_loss"]
        lines.append(h.note(
            f"On {results['n_test']} test rows the ensemble's log-loss is {gain:+.4g} lower than "
            f"the members' mean (lower is better); ECE uses {results.get('ece_bins')} "
            "equal-width confidence bins."))
    return "".join(lines)


def reliability_figure(results: dict[str, Any]) -> Figure:
    fig, ax = new_figure(5.2, 4.4, top=0.45)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    rel = results["reliability"]
    for k, bins in enumerate(rel["members"]):
        pts = [(c, a) for c, a, n in zip(bins["confidence"], bins["accuracy"], bins["count"],
                                         strict=True) if n > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), color="0.7", marker=".", linewidth=1,
                    label="members" if k == 0 else None)
    bins = rel["ensemble"]
    pts = [(c, a) for c, a, n in zip(bins["confidence"], bins["accuracy"], bins["count"],
                                     strict=True) if n > 0]
    if pts:
        ax.plot(*zip(*pts, strict=True), color="C0", marker="o", linewidth=2, label="ensemble")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    panel_title(ax, "Reliability diagram (test)")
    return fig


def render_ensemble_report(path: Path, info: dict[str, Any], results: dict[str, Any]) -> str:
    sections = [("results", "Members and ensemble on test", results_section(results))]
    if "reliability" in results:
        uri = render(reliability_figure, results)
        sections.append(("calibration", "Calibration", h.figures([h.figure(
            "reliability", uri, "accuracy against confidence per bin: the diagonal is perfect "
            "calibration; points below it are over-confident")])))
    about = [("kind", KIND_TEXT.get(str(info.get("kind")), info.get("kind"))),
             ("method", info.get("method")), ("members", len(info.get("members", []))),
             ("status", info.get("status")), ("started", info.get("started")),
             ("finished", info.get("finished"))]
    if info.get("study"):
        about.append(("study", info["study"].get("dir")))
    sections.append(("ensemble", "Ensemble", h.kv_table(about)))
    return h.page(f"Ensemble {path.name}", f"{results['task']} · {len(results['members'])} "
                  f"members · {results['method']}", sections)


def write_ensemble_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the ensemble's ``report.html`` (or ``out``) from its members' test predictions.

    Raises:
        RunError: the ensemble directory or a member is missing or damaged.
    """
    path = Path(path)
    spec = read_ensemble(path)
    results, _ = ensemble_results(spec)
    target = Path(out) if out is not None else path / "report.html"
    h.write_page(target, lambda: render_ensemble_report(path, spec.info, results))
    logger.info("wrote %s", target)
    return target


__all__ = ["render_ensemble_report", "write_ensemble_report"]

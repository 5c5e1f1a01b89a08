"""``report.html`` of a study: history, best so far, parameters, leaderboard, all curves."""

from __future__ import annotations

import logging
from pathlib import Path

from trainwell.report import html as h
from trainwell.report import study_figures as sf
from trainwell.report.figures import render
from trainwell.report.studydata import StudyData, TrialData, load_study_dir

logger = logging.getLogger(__name__)


def summary_section(study: StudyData) -> str:
    info = study.info
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.lower()] = states.get(t.state.lower(), 0) + 1
    best = study.best()
    pairs = [
        ("method", info.get("method")), ("metric", study.metric), ("direction", study.direction),
        ("trials", len(study.trials)),
        *((f"{s} trials", n) for s, n in sorted(states.items())),
        *((("stages", ", ".join(dict.fromkeys(t.stage for t in study.trials))),)
          if study.staged else ()),
        ("best trial", best.label(study.staged) if best else None),
        (f"best {study.metric}", best.value if best else None),
        ("trials read from", study.source or None),
    ]
    body = '<div class="cards"><div class="card"><h3>Study</h3>' + h.kv_table(pairs) + "</div>"
    if best is not None:
        body += ('<div class="card"><h3>Best parameters</h3>'
                 + h.kv_table(sorted(best.params.items())) + _trial_link(study, best)
                 + "</div>")
    body += "</div>"
    final = study.path / "final" / "report.html"
    if final.is_file():
        body += ('<p><a href="final/report.html">report of the final run</a> '
                 "(the best config trained in full)</p>")
    if (study.path / "best_config.toml").is_file():
        text = (study.path / "best_config.toml").read_text(encoding="utf-8", errors="replace")
        body += ("<details><summary>best_config.toml</summary>"
                 f"<pre>{h.esc(text)}</pre></details>")
    for problem in study.problems.values():
        body += h.note(problem)
    return body


def _trial_link(study: StudyData, trial: TrialData) -> str:
    if trial.run is None:
        return ""
    rel = trial.run.path.relative_to(study.path) / "report.html"
    if (study.path / rel).is_file():
        return (f'<p><a href="{h.esc(rel.as_posix())}">report of trial '
                f"{h.esc(trial.label(study.staged))}</a></p>")
    return ""


def history_section(study: StudyData) -> str:
    if not study.trials:
        return h.note("no trials were found in study.db or trials.csv")
    return h.figures([
        h.figure("fig-history", render(sf.history_figure, study),
                 f"Optimization history: {study.metric} of each trial"),
        h.figure("fig-best", render(sf.best_so_far_figure, study),
                 f"Best {study.metric} so far ({study.direction})"),
    ])


def parallel_section(study: StudyData) -> str:
    if not study.completed() or not study.param_names():
        return h.note("no completed trial with parameters to draw")
    return h.figures([h.figure(
        "fig-parallel", render(sf.parallel_figure, study),
        f"Parallel coordinates: each line is a trial, colored by {study.metric}; "
        "darker is better", wide=True)])


def importance_section(study: StudyData) -> str:
    if not study.importances:
        why = study.problems.get("importances", "study.json lists no parameter importances")
        return h.note(why)
    return h.figures([h.figure("fig-importance", render(sf.importance_figure, study.importances),
                               "Parameter importances (fANOVA)")])


def leaderboard_section(study: StudyData) -> str:
    names = study.param_names()
    ranked = study.ranked()
    rest = [t for t in study.trials if t not in ranked]
    rows = []
    for rank, t in enumerate(ranked + rest, start=1):
        epochs = len(t.run.metrics) if t.run is not None else None
        rows.append((rank if t in ranked else None, t.label(study.staged), t.state.lower(),
                     t.value, epochs, *(t.params.get(n) for n in names)))
    if not rows:
        return h.note("no trials to rank")
    return h.table(["rank", "trial", "state", study.metric, "epochs", *names], rows)


def curves_key(study: StudyData) -> str:
    """The per-epoch column the trials' curves show: the study's metric if logged, else val_loss."""
    for t in study.trials:
        if t.run is not None and study.metric in t.run.metric_names():
            return study.metric
    return "val_loss"


def curves_section(study: StudyData) -> str:
    if not any(t.run is not None for t in study.trials):
        return h.note("no trial run directories (trials/<number>/) were found")
    key = curves_key(study)
    return h.figures([h.figure("fig-trial-curves", render(sf.curves_figure, study, key),
                               f"{key} per epoch of every trial, colored by its {study.metric}")])


def render_study_report(study: StudyData) -> str:
    sections = [
        ("summary", "Summary", summary_section(study)),
        ("history", "Optimization history", history_section(study)),
        ("parallel", "Parallel coordinates", parallel_section(study)),
        ("importance", "Parameter importances", importance_section(study)),
        ("leaderboard", "Leaderboard", leaderboard_section(study)),
        ("curves", "Learning curves of all trials", curves_section(study)),
    ]
    method = study.info.get("method", "study")
    return h.page(f"Study {study.path.name}",
                  f"{method} · {len(study.trials)} trials · {study.direction} {study.metric}",
                  sections)


def write_study_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained ``report.html`` of a study directory.

    Args:
        study_dir: a study directory (``trainwell tune``'s output).
        out: where to write; default ``study_dir/report.html``.

    Returns:
        The path of the written report.

    Raises:
        RunError: if ``study_dir`` is not a study directory.

    Example:
        >>> write_study_report("runs/iris-study")  # doctest: +SKIP
        PosixPath('runs/iris-study/report.html')
    """
    study = load_study_dir(study_dir)
    path = Path(out) if out is not None else study.path / "report.html"
    h.write_page(path, lambda: render_study_report(study))
    logger.info("wrote %s", path)
    return path

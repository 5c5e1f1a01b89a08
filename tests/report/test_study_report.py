"""report.html of a real study (trainwell.tune): history, parameters, leaderboard, all curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from reporthelp import Page, assert_self_contained

from trainwell.errors import RunError
from trainwell.report import write_run_report, write_study_report
from trainwell.report.studydata import load_study_dir

STUDY_SECTIONS = ["summary", "history", "parallel", "importance", "leaderboard", "curves"]
STUDY_FIGURES = ["fig-history", "fig-best", "fig-parallel", "fig-importance", "fig-trial-curves"]


@pytest.fixture(scope="module")
def study_page(study_dir):
    """The page ``tune`` wrote at the end of the study (``[log] report``)."""
    return Page(study_dir / "report.html")


def test_study_report_regenerates_byte_for_byte(study_dir, monkeypatch):
    import re

    stamp = re.compile(r'<time id="generated">[^<]*</time>')
    first = (study_dir / "report.html").read_text(encoding="utf-8")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    again = write_study_report(study_dir, study_dir / "again.html").read_text(encoding="utf-8")
    (study_dir / "again.html").unlink()
    assert stamp.sub("", first) == stamp.sub("", again)


def test_study_report_has_every_section_and_figure(study_page):
    assert study_page.sections == STUDY_SECTIONS
    assert study_page.figures == STUDY_FIGURES
    assert_self_contained(study_page)


def test_leaderboard_ranks_trials_csv_by_value(study_dir, study_page):
    with open(study_dir / "trials.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["state"] == "COMPLETE"]
    expected = [r["number"] for r in sorted(rows, key=lambda r: float(r["value"]))]
    table = study_page.table_with("rank")
    assert [r[1] for r in table[1:len(expected) + 1]] == expected
    best = json.loads((study_dir / "study.json").read_text())["best_trial"]
    assert table[1][1] == str(best["number"])
    assert float(table[1][3]) == pytest.approx(best["value"], rel=1e-3)


def test_study_reads_db_and_every_trial_run(study_dir):
    study = load_study_dir(study_dir)
    assert study.source == "study.db"
    assert "train.optimizer.lr" in study.log_params  # loguniform: drawn on a log axis
    assert all(t.run is not None and t.run.metrics for t in study.trials)
    assert study.importances.keys() == {"train.optimizer.lr", "model.dropout"}


def test_trials_csv_is_the_fallback_without_the_database(study_dir, tmp_path):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study_dir, copy)
    (copy / "study.db").unlink()
    db_study, csv_study = load_study_dir(study_dir), load_study_dir(copy)
    assert csv_study.source == "trials.csv"
    assert [(t.number, t.state, t.value) for t in csv_study.trials] == [
        (t.number, t.state, pytest.approx(t.value)) for t in db_study.trials]
    assert Page(write_study_report(copy)).figures == STUDY_FIGURES


def test_not_a_study_directory_is_refused(tmp_path, study_dir):
    with pytest.raises(RunError, match="is not a study directory"):
        write_study_report(tmp_path)
    with pytest.raises(RunError, match="is a study directory, not a run"):
        write_run_report(study_dir)


def _objective(cfg, trial):  # noqa: ANN001, ANN202 - a cheap closed-form objective
    import math

    return (math.log10(cfg.train.optimizer.lr) + 2) ** 2 + cfg.model.dropout


def test_coarse_to_fine_study_shows_both_stages(runs_root):
    from trainwell.tune import tune

    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(runs_root),
           "tune": {"method": "random", "trials": 4,
                    "recipe": {"coarse_trials": 5, "refine_trials": 3, "top_k": 2},
                    "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)",
                              "model.dropout": "uniform(0, 0.5)"}}}
    study_dir = Path(tune(cfg, name="recipe", recipe=True, objective=_objective).dir)
    info = json.loads((study_dir / "study.json").read_text())
    study = load_study_dir(study_dir)
    stages = [s["name"] for s in info["stages"]]
    assert list(dict.fromkeys(t.stage for t in study.trials)) == stages and study.staged
    best = study.best()
    assert (best.stage, best.number) == (info["best_trial"]["stage"], info["best_trial"]["number"])
    page = Page(write_study_report(study_dir))
    assert page.figures == STUDY_FIGURES[:-1]  # no trial trained, so no curves to draw
    assert "no trial run directories" in page.text
    labels = [r[1] for r in page.table_with("rank")[1:]]
    assert f"{best.stage} {best.number}" in labels
    assert all(label.split(" ")[0] in stages for label in labels)

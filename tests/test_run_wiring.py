"""What a run gets from its config beyond training: the doctor's monitor and checks, the report,
TensorBoard, and the status of a run stopped by a callback."""

from __future__ import annotations

import json

import pytest

import trainwell
from trainwell.errors import DivergenceError, StopRun

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16]},
    "train": {"epochs": 4, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}},
    "doctor": {"monitor_every": 2},
}


def test_a_default_run_has_statistics_a_verdict_and_a_report(runs_dir):
    run = trainwell.fit(IRIS, name="r", quiet=True)
    stats = [json.loads(line) for line in (run.run_dir / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2, 3, 4]
    assert all(s["layers"] for s in stats)
    doctor = json.loads((run.run_dir / "doctor.json").read_text())
    assert [f["check"] for f in doctor["findings"]] == ["curves.verdict"]
    assert doctor["activation_stats"]["init"] and doctor["activation_stats"]["end"]
    html = (run.run_dir / "report.html").read_text()
    assert "<html" in html and "learning curves" in html.lower()


def test_report_and_monitor_can_be_turned_off(runs_dir):
    cfg = dict(IRIS, doctor={"monitor": False}, log={"report": False})
    run = trainwell.fit(cfg, name="r", quiet=True)
    names = {p.name for p in run.run_dir.iterdir()}
    assert not {"stats.jsonl", "doctor.json", "report.html"} & names


def test_doctor_enabled_runs_the_checks_before_training(runs_dir):
    cfg = dict(IRIS, doctor={"enabled": True, "checks": ["initial_loss"], "monitor_every": 2})
    run = trainwell.fit(cfg, name="r", quiet=True)
    checks = {f["check"] for f in json.loads((run.run_dir / "doctor.json").read_text())["findings"]}
    assert any(c.startswith("loss.initial") for c in checks)
    assert any(c.startswith("curves") for c in checks)


def test_the_monitor_does_not_change_the_numbers(runs_dir):
    on = trainwell.fit(IRIS, name="on", quiet=True)
    off = trainwell.fit(dict(IRIS, doctor={"monitor": False}), name="off", quiet=True)
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in h]  # noqa: E731
    assert strip(on.history) == strip(off.history)


def test_a_diverged_run_still_gets_its_verdict_and_report(runs_dir):
    cfg = dict(
        IRIS, train={"epochs": 4, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 1e12}}
    )
    with pytest.raises(DivergenceError) as info:
        trainwell.fit(cfg, name="d", quiet=True)
    run_dir = info.value.run.run_dir
    doctor = json.loads((run_dir / "doctor.json").read_text())
    assert any(f["status"] == "fail" for f in doctor["findings"])
    assert (run_dir / "report.html").exists()


class _PruneAtEpoch2:
    def after_epoch(self, trainer):
        if trainer.epoch == 2:
            raise StopRun("pruned at epoch 2", status="pruned")


class _NamedLikeOptuna(Exception):
    """An exception that only looks like optuna.TrialPruned: a failure, not a pruned trial."""


_NamedLikeOptuna.__name__ = "TrialPruned"


class _FailAtEpoch2:
    def after_epoch(self, trainer):
        if trainer.epoch == 2:
            raise _NamedLikeOptuna("not a stop")


def test_a_run_stopped_by_the_pruner_is_marked_pruned(runs_dir):
    with pytest.raises(StopRun):
        trainwell.fit(IRIS, name="p", quiet=True, callbacks=[_PruneAtEpoch2()])
    meta = json.loads((runs_dir / "p" / "meta.json").read_text())
    assert meta["status"] == "pruned" and meta["finished"]


def test_a_stop_is_recognised_by_its_class_not_its_name(runs_dir):
    with pytest.raises(_NamedLikeOptuna):
        trainwell.fit(IRIS, name="q", quiet=True, callbacks=[_FailAtEpoch2()])
    assert json.loads((runs_dir / "q" / "meta.json").read_text())["status"] == "failed"

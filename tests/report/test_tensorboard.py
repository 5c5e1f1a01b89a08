"""TensorBoard: a real run's scalars and histograms, and a clear message without the package."""

from __future__ import annotations

import json
import sys

import pytest
from reporthelp import fit_run

from trainwell.errors import ConfigError
from trainwell.report.tensorboard import TensorBoardLogger, require_tensorboard, scalar_tag


def test_events_hold_the_metrics_of_every_epoch(runs_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = fit_run(runs_root, "iris-tb", monitor=False, tensorboard=True)
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0})
    acc.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"),
                     ("val_accuracy", "accuracy/val"), ("lr", "lr")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [r["epoch"] for r in records]
        assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6)
    hists = acc.Tags()["histograms"]
    weights = [t for t in hists if t.startswith("weights/")]
    grads = [t for t in hists if t.startswith("grads/")]
    assert weights and len(grads) == len(weights)
    assert [e.step for e in acc.Histograms(weights[0])] == [1, 2, 3]


def test_scalar_tags_group_splits():
    assert [scalar_tag(k) for k in ("train_loss", "val_f1", "lr", "epoch_time")] == [
        "loss/train", "f1/val", "lr", "time/epoch"]


def test_missing_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"log\.tensorboard.*pip install tensorboard"):
        TensorBoardLogger(tmp_path)
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        require_tensorboard()


def test_fit_refuses_tensorboard_without_the_package_before_any_run(monkeypatch, tmp_path, capsys):
    from trainwell.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "tb.toml"
    cfg.write_text('[data]\nsource = "builtin:iris"\n[log]\ntensorboard = true\n')
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install tensorboard" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made

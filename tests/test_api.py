"""The whole flow: fit -> run directory -> load / predict; resume after SIGKILL; the commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

import trainwell
from trainwell.cli import main
from trainwell.errors import ConfigError, DivergenceError, RunError

IRIS = {"data": {"source": "builtin:iris"}, "model": {"hidden": [16], "dropout": 0.2},
        "train": {"epochs": 8, "batch_size": 16, "checkpoint_every": 2,
                  "optimizer": {"name": "adam", "lr": 0.01}}}
RUN_FILES = {"config.toml", "meta.json", "data.json", "preprocess.json", "metrics.jsonl", "checkpoints",
             "model.safetensors", "results.json", "predictions.npz"}


def metrics_without_times(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time", "time")} for line in lines]


def test_fit_writes_a_complete_run_and_load_predicts(runs_dir):
    run = trainwell.fit(IRIS, name="a", quiet=True)
    assert run.run_dir.resolve() == (runs_dir / "a").resolve() and run.status == "completed"
    assert RUN_FILES <= {p.name for p in run.run_dir.iterdir()}
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")]  # no staging left
    meta = json.loads((run.run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 0 and meta["finished"]
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["best_epoch"] == run.trainer.best_epoch and results["n_params"] == 16 * 4 + 16 + 16 * 3 + 3
    assert len(metrics_without_times(run.run_dir)) == 8
    pred = np.load(run.run_dir / "predictions.npz", allow_pickle=False)
    assert pred["proba"].shape == (len(pred["y_true"]), 3)
    assert (pred["y_pred"] == pred["y_true"]).mean() == pytest.approx(run.metrics["test_accuracy"])
    # the predictor applies the saved preprocessing: same outputs as the model on the test split
    X, _ = load_iris(return_X_y=True, as_frame=True)
    frame = X.iloc[run.prepared.test.index]
    p = trainwell.load(run.run_dir)
    proba = p.predict_proba(frame)
    np.testing.assert_allclose(proba, pred["proba"], rtol=1e-5, atol=1e-6)
    assert list(p.predict(frame)) == [run.prepared.classes[i] for i in pred["y_pred"]]


def test_same_seed_gives_identical_metrics(runs_dir):
    a = trainwell.fit(IRIS, name="a", quiet=True)
    b = trainwell.fit(IRIS, name="b", quiet=True)
    assert metrics_without_times(a.run_dir) == metrics_without_times(b.run_dir)
    with pytest.raises(RunError, match="already exists"):
        trainwell.fit(IRIS, name="a", quiet=True)


KILLER = textwrap.dedent("""
    import os, signal, sys
    import trainwell

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == 5:  # the checkpoint of epoch 4 exists; metrics.jsonl has 5 lines
                os.kill(os.getpid(), signal.SIGKILL)

    trainwell.fit(sys.argv[1], name="killed", quiet=True, callbacks=[Kill()])
""")


def test_sigkill_then_resume_matches_uninterrupted_run(runs_dir, tmp_path):
    import tomli_w

    cfg = tmp_path / "iris.toml"
    cfg.write_text(tomli_w.dumps(IRIS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg)], cwd=tmp_path, env=env, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    killed = runs_dir / "killed"
    assert json.loads((killed / "meta.json").read_text())["status"] == "running"
    assert len(metrics_without_times(killed)) == 5
    proc = subprocess.run([sys.executable, "-m", "trainwell", "train", "--resume", str(killed), "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 5:" in proc.stdout and "epoch 4:" not in proc.stdout
    full = trainwell.fit(IRIS, name="full", quiet=True)
    assert metrics_without_times(killed) == metrics_without_times(full.run_dir)
    assert json.loads((killed / "results.json").read_text())["test"] == full.results["test"]
    assert json.loads((killed / "meta.json").read_text())["status"] == "completed"


def test_divergence_finishes_the_run_with_its_diagnosis(runs_dir):
    cfg = {**IRIS, "train": {**IRIS["train"], "optimizer": {"name": "sgd", "lr": 1e12}}}
    with pytest.raises(DivergenceError, match=r"at step \d+ .*lr 1e\+12.*learning rate is too high") as info:
        trainwell.fit(cfg, name="boom", quiet=True)
    assert info.value.run.status == "diverged"
    meta = json.loads((runs_dir / "boom" / "meta.json").read_text())
    results = json.loads((runs_dir / "boom" / "results.json").read_text())
    assert meta["status"] == "diverged" and results["diverged"] is True


def test_a_loss_that_does_not_fit_is_refused_before_a_run_starts(runs_dir):
    with pytest.raises(ConfigError, match="train.loss 'hinge' does not fit a regression task"):
        trainwell.fit({"data": {"source": "builtin:iris", "task": "regression"}, "train": {"loss": "hinge"}})
    with pytest.raises(ConfigError, match="train.loss 'l2' does not fit a multiclass task"):
        trainwell.fit({"data": {"source": "builtin:iris"}, "train": {"loss": "l2"}})
    assert list(runs_dir.iterdir()) == []


def test_train_and_predict_commands_on_a_csv(runs_dir, tmp_path, capsys):
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.to_csv(tmp_path / "iris.csv", index=False)
    frame.drop(columns="target").iloc[[0, 60, 120]].to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "c.toml").write_text('[data]\nsource = "csv:iris.csv"\ntarget = "target"\n')
    assert main(["train", str(tmp_path / "c.toml"), "--name", "csv", "--quiet", "--set", "train.epochs=40",
                 "--set", "train.optimizer.lr=0.01"]) == 0
    assert "run runs/csv: best epoch" in capsys.readouterr().out
    assert main(["predict", "runs/csv", str(tmp_path / "new.csv"), "--out", "out.csv"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["id", "prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert list(out["prediction"]) == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(out.filter(like="proba_").sum(axis=1), 1.0, rtol=1e-5)
    assert main(["predict", "runs/csv", str(tmp_path / "new.csv"), "--out", "out.txt"]) == 2
    assert "--out must end in .csv, .parquet or .npz" in capsys.readouterr().err
    assert main(["train"]) == 2 and "needs a CONFIG" in capsys.readouterr().err


def test_demo_reaches_97_percent(runs_dir, capsys):
    assert main(["demo", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trainwell predict runs/demo-digits" in out
    results = json.loads((runs_dir / "demo-digits" / "results.json").read_text())
    assert results["test"]["test_accuracy"] >= 0.97
    assert RUN_FILES <= {p.name for p in (runs_dir / "demo-digits").iterdir()}

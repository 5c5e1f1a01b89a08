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

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16], "dropout": 0.2},
    "train": {
        "epochs": 8,
        "batch_size": 16,
        "checkpoint_every": 2,
        "optimizer": {"name": "adam", "lr": 0.01},
    },
}
RUN_FILES = {
    "config.toml",
    "meta.json",
    "data.json",
    "preprocess.json",
    "metrics.jsonl",
    "checkpoints",
    "model.safetensors",
    "results.json",
    "predictions.npz",
}


def metrics_without_times(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("epoch_time", "time")}
        for line in lines
    ]


def test_fit_writes_a_complete_run_and_load_predicts(runs_dir):
    run = trainwell.fit(IRIS, name="a", quiet=True)
    assert run.run_dir.resolve() == (runs_dir / "a").resolve() and run.status == "completed"
    assert RUN_FILES <= {p.name for p in run.run_dir.iterdir()}
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")]  # no staging left
    meta = json.loads((run.run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 0 and meta["finished"]
    results = json.loads((run.run_dir / "results.json").read_text())
    assert (
        results["best_epoch"] == run.trainer.best_epoch
        and results["n_params"] == 16 * 4 + 16 + 16 * 3 + 3
    )
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


def test_resume_rebuilds_the_metrics_log_from_the_checkpoint(runs_dir):
    """metrics.jsonl lines are not fsynced one by one; a crash of the machine may lose some.
    The checkpoint holds the history, so a resumed run's log is whole again."""

    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 5:
                raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(IRIS, name="crashed", quiet=True, callbacks=[Crash()])
    crashed = runs_dir / "crashed"
    lines = (crashed / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    (crashed / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")  # epochs 3-5 lost
    trainwell.fit(resume=crashed, quiet=True)
    full = trainwell.fit(IRIS, name="full", quiet=True)
    assert metrics_without_times(crashed) == metrics_without_times(full.run_dir)


def test_sigkill_then_resume_matches_uninterrupted_run(runs_dir, tmp_path):
    import tomli_w

    cfg = tmp_path / "iris.toml"
    cfg.write_text(tomli_w.dumps(IRIS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(cfg)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    killed = runs_dir / "killed"
    assert json.loads((killed / "meta.json").read_text())["status"] == "running"
    assert len(metrics_without_times(killed)) == 5
    proc = subprocess.run(
        [sys.executable, "-m", "trainwell", "train", "--resume", str(killed)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch 5:" in proc.stdout and "epoch 4:" not in proc.stdout
    full = trainwell.fit(IRIS, name="full", quiet=True)
    assert metrics_without_times(killed) == metrics_without_times(full.run_dir)
    assert json.loads((killed / "results.json").read_text())["test"] == full.results["test"]
    assert json.loads((killed / "meta.json").read_text())["status"] == "completed"


def test_divergence_finishes_the_run_with_its_diagnosis(runs_dir):
    cfg = {**IRIS, "train": {**IRIS["train"], "optimizer": {"name": "sgd", "lr": 1e12}}}
    with pytest.raises(
        DivergenceError, match=r"at step \d+ .*lr 1e\+12.*learning rate is too high"
    ) as info:
        trainwell.fit(cfg, name="boom", quiet=True)
    assert info.value.run.status == "diverged"
    meta = json.loads((runs_dir / "boom" / "meta.json").read_text())
    results = json.loads((runs_dir / "boom" / "results.json").read_text())
    assert meta["status"] == "diverged" and results["diverged"] is True


def test_a_loss_that_does_not_fit_is_refused_before_a_run_starts(runs_dir):
    with pytest.raises(ConfigError, match="train.loss 'hinge' does not fit a regression task"):
        trainwell.fit(
            {"data": {"source": "builtin:iris", "task": "regression"}, "train": {"loss": "hinge"}}
        )
    with pytest.raises(ConfigError, match="train.loss 'l2' does not fit a multiclass task"):
        trainwell.fit({"data": {"source": "builtin:iris"}, "train": {"loss": "l2"}})
    assert list(runs_dir.iterdir()) == []


def test_train_and_predict_commands_on_a_csv(runs_dir, tmp_path, capsys):
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.to_csv(tmp_path / "iris.csv", index=False)
    frame.drop(columns="target").iloc[[0, 60, 120]].to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "c.toml").write_text('[data]\nsource = "csv:iris.csv"\ntarget = "target"\n')
    assert (
        main(
            [
                "train",
                str(tmp_path / "c.toml"),
                "--name",
                "csv",
                "--quiet",
                "--set",
                "train.epochs=40",
                "--set",
                "train.optimizer.lr=0.01",
            ]
        )
        == 0
    )
    assert "run runs/csv: best epoch" in capsys.readouterr().out
    assert main(["predict", "runs/csv", str(tmp_path / "new.csv"), "--out", "out.csv"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [
        "id",
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
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


def _digit_folder(root, n=60, classes=3):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.flatnonzero(d.target < classes)[:n]
    for i in keep:
        folder = root / f"c{d.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).save(folder / f"{i}.png")
    return keep


def test_lazy_image_folder_streams_through_fit_and_predict_reads_a_folder(
    runs_dir, tmp_path, capsys
):
    from torch.utils.data import Dataset

    _digit_folder(tmp_path / "imgs")
    cfg = {
        "data": {
            "source": f"images:{tmp_path / 'imgs'}",
            "images": {"mode": "L", "memory_mb": 0.001},
        },
        "model": {"hidden": [16]},
        "train": {"epochs": 3, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.01}},
        "doctor": {"monitor": False},
        "log": {"report": False},
    }
    run = trainwell.fit(cfg, name="img", quiet=True)
    assert isinstance(run.prepared.train.X, Dataset)  # read lazily: batches came from a DataLoader
    assert run.trainer.steps_per_epoch == -(-len(run.prepared.train) // 8)
    assert len(metrics_without_times(run.run_dir)) == 3
    # the test split's files, copied flat into a new folder, predict as predictions.npz says
    test_paths = run.prepared.test.X.paths
    new = tmp_path / "new"
    new.mkdir()
    for k, path in enumerate(test_paths):
        (new / f"{k:03d}.png").write_bytes(path.read_bytes())
    assert main(["predict", "runs/img", str(new), "--out", "img.csv"]) == 0
    out = pd.read_csv(tmp_path / "img.csv")
    saved = np.load(run.run_dir / "predictions.npz", allow_pickle=False)
    assert list(out["id"]) == [f"{k:03d}.png" for k in range(len(test_paths))]
    np.testing.assert_allclose(
        out[["proba_c0", "proba_c1", "proba_c2"]].to_numpy(), saved["proba"], rtol=1e-4, atol=1e-6
    )
    assert list(out["prediction"]) == [f"c{i}" for i in saved["y_pred"]]
    np.testing.assert_allclose(
        trainwell.load("runs/img").predict_proba(new), saved["proba"], rtol=1e-4, atol=1e-6
    )
    assert main(["predict", "runs/img", str(tmp_path / "img.csv"), "--out", "x.csv"]) == 2
    assert "this run was fitted on images" in capsys.readouterr().err


def test_predict_reads_npz_and_parquet_and_writes_each_format(runs_dir, tmp_path):
    X, y = load_iris(return_X_y=True)
    np.savez(tmp_path / "iris.npz", X=X.astype(np.float32), y=y)
    cfg = {
        "data": {"source": f"npz:{tmp_path / 'iris.npz'}"},
        "model": {"hidden": [8]},
        "train": {"epochs": 3, "optimizer": {"name": "adam", "lr": 0.01}},
        "doctor": {"monitor": False},
        "log": {"report": False},
    }
    trainwell.fit(cfg, name="npz", quiet=True)
    np.savez(tmp_path / "new.npz", X=X[[0, 75, 140]].astype(np.float32), ids=np.array([7, 8, 9]))
    assert main(["predict", "runs/npz", str(tmp_path / "new.npz"), "--out", "p.npz"]) == 0
    got = np.load(tmp_path / "p.npz", allow_pickle=False)
    assert list(got["id"]) == [7, 8, 9]
    p = trainwell.load("runs/npz")
    expected = p.predict_proba(str(tmp_path / "new.npz"))
    np.testing.assert_allclose(
        np.stack([got[f"proba_{c}"] for c in range(3)], axis=1), expected, rtol=1e-6
    )
    assert list(got["prediction"]) == list(p.predict(str(tmp_path / "new.npz")))
    # a table run reads Parquet as it reads CSV, and writes Parquet
    frame = load_iris(as_frame=True).frame
    frame.to_csv(tmp_path / "iris.csv", index=False)
    trainwell.fit(
        {
            "data": {"source": f"csv:{tmp_path / 'iris.csv'}"},
            "train": {"epochs": 2},
            "doctor": {"monitor": False},
            "log": {"report": False},
        },
        name="csv",
        quiet=True,
    )
    rows = frame.drop(columns="target").iloc[[3, 90]]
    rows.to_parquet(tmp_path / "new.parquet", index=False)
    assert main(["predict", "runs/csv", str(tmp_path / "new.parquet"), "--out", "p.parquet"]) == 0
    back = pd.read_parquet(tmp_path / "p.parquet")
    np.testing.assert_allclose(
        back.filter(like="proba_").to_numpy(),
        trainwell.load("runs/csv").predict_proba(rows),
        rtol=1e-6,
    )


def test_bad_command_line_input_gets_a_clear_error(runs_dir, tmp_path, capsys):
    frame = load_iris(as_frame=True).frame
    frame.to_csv(tmp_path / "iris.csv", index=False)
    (tmp_path / "c.toml").write_text(
        f'[data]\nsource = "csv:{(tmp_path / "iris.csv").as_posix()}"\n'
        "[train]\nepochs = 2\n[doctor]\nmonitor = false\n[log]\nreport = false\n"
    )
    assert main(["train", str(tmp_path / "c.toml"), "--name", "r", "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "notrun").mkdir()
    cases = [
        (
            ["train", "--resume", str(tmp_path / "notrun")],
            "has no config.toml (is it a run directory?)",
        ),
        (["train", "--resume", str(tmp_path / "nowhere")], "no such directory"),
        (["train", "--resume", "runs/r"], "already completed; nothing to resume"),
        (
            ["train", "--resume", "runs/r", "--set", "train.epochs=5"],
            "a resumed run keeps its config.toml",
        ),
        (["train", "--resume", "runs/r", "--name", "x"], "--name does not apply to --resume"),
        (
            ["train", str(tmp_path / "c.toml"), "--resume", "runs/r"],
            "either CONFIG or --resume RUN",
        ),
        (["predict", str(tmp_path / "notrun"), "x.csv", "--out", "o.csv"], "no model.safetensors"),
    ]
    frame.drop(columns=["target", "petal width (cm)"]).to_csv(tmp_path / "missing.csv", index=False)
    cases.append(
        (
            ["predict", "runs/r", str(tmp_path / "missing.csv"), "--out", "o.csv"],
            "'petal width (cm)' is not a column of csv file",
        )
    )
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "o.csv").exists()


def test_load_refuses_probabilities_for_regression(runs_dir):
    cfg = {
        "data": {"source": "builtin:diabetes"},
        "model": {"hidden": [8]},
        "train": {"epochs": 2},
        "doctor": {"monitor": False},
        "log": {"report": False},
    }
    run = trainwell.fit(cfg, name="reg", quiet=True)
    from sklearn.datasets import load_diabetes

    X = load_diabetes(as_frame=True).frame.drop(columns="target").iloc[run.prepared.test.index]
    p = trainwell.load(run.run_dir)
    pred = np.load(run.run_dir / "predictions.npz", allow_pickle=False)["y_pred"]
    np.testing.assert_allclose(p.predict(X).reshape(-1), pred.reshape(-1), rtol=1e-5, atol=1e-4)
    with pytest.raises(
        trainwell.errors.TrainwellError, match="predict_proba needs a classification run"
    ):
        p.predict_proba(X)
    # a plain array of the raw feature columns, in order, works like the DataFrame
    np.testing.assert_allclose(p.predict(X.to_numpy()), p.predict(X), rtol=1e-6)
    with pytest.raises(
        trainwell.errors.DataError, match=r"must have shape \(n, 10\), one column per raw feature"
    ):
        p.predict(X.to_numpy()[:, :3])


def test_predict_takes_npz_columns_by_position_for_a_table_run(runs_dir, tmp_path):
    iris = load_iris()
    trainwell.fit(IRIS, name="tab", quiet=True)  # trained on builtin:iris, named columns
    np.savez(tmp_path / "new.npz", X=iris.data[[0, 75, 140]])
    out = tmp_path / "p.csv"
    assert (
        main(["predict", str(runs_dir / "tab"), str(tmp_path / "new.npz"), "--out", str(out)]) == 0
    )
    direct = trainwell.load(runs_dir / "tab").predict(
        pd.DataFrame(iris.data[[0, 75, 140]], columns=iris.feature_names)
    )
    assert list(pd.read_csv(out)["prediction"]) == list(direct)
    np.savez(tmp_path / "narrow.npz", X=iris.data[:3, :3])
    assert (
        main(["predict", str(runs_dir / "tab"), str(tmp_path / "narrow.npz"), "--out", str(out)])
        == 2
    )


def test_tw_tune_is_the_entry_point_and_the_package_stays_importable():
    import importlib
    import sys

    import trainwell as tw
    from trainwell.tune import study as study_module

    assert callable(tw.tune) and tw.tune.__module__ == "trainwell"
    assert isinstance(sys.modules["trainwell.tune"], type(sys))  # the package is a module
    assert importlib.import_module("trainwell.tune").Study is study_module.Study

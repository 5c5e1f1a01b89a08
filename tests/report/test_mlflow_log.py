"""MLflow: a real run logged to a local MLflow file store and read back with MlflowClient; the
config checks at load; mlflow imported only when a run logs to it."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from trainwell.report.mlflow_log import client_for, final_metrics, params_of, tracking_uri

EPOCHS = 3


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A run with ``[log] mlflow = true`` and what it printed and warned."""
    from trainwell.api import fit

    root = tmp_path_factory.mktemp("ml") / "runs"
    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(root),
           "train": {"epochs": EPOCHS, "batch_size": 32},
           "doctor": {"monitor": False}, "log": {"mlflow": True}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = fit(cfg, name="iris-ml", quiet=True)
    return run, caught


def test_the_run_reads_back_from_the_file_store(logged, capfd):
    run, _ = logged
    meta = json.loads((run.run_dir / "meta.json").read_text())["mlflow"]
    store = run.run_dir.parent / "mlruns"
    assert meta["tracking_uri"] == store.resolve().as_uri() and store.is_dir()
    client = client_for(meta["tracking_uri"])
    got = client.get_run(meta["run_id"])
    assert got.info.status == "FINISHED" and got.info.run_name == "iris-ml"
    assert client.get_experiment(got.info.experiment_id).name == "trainwell"
    params = got.data.params
    assert params["data.source"] == "builtin:iris" and params["train.epochs"] == str(EPOCHS)
    assert params["train.batch_size"] == "32" and params["model.hidden"] == "[256, 256]"
    assert params == params_of(run.config.to_dict())

    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text()
               .splitlines()]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        history = client.get_metric_history(meta["run_id"], key)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
        assert [m.value for m in history] == pytest.approx([r[key] for r in records])
    results = json.loads((run.run_dir / "results.json").read_text())
    assert got.data.metrics["test_accuracy"] == pytest.approx(results["test"]["test_accuracy"])
    assert got.data.metrics["best_val_loss"] == pytest.approx(results["best"]["val_loss"])

    names = {a.path for a in client.list_artifacts(meta["run_id"])}
    assert {"config.toml", "report.html", "results.json", "metrics.jsonl"} <= names
    local = client.download_artifacts(meta["run_id"], "config.toml", str(run.run_dir.parent))
    assert Path(local).read_text() == (run.run_dir / "config.toml").read_text()


def test_mlflow_prints_and_warns_nothing(logged):
    _, caught = logged
    assert [str(w.message) for w in caught if "mlflow" in (w.filename or "")] == []
    assert [str(w.message) for w in caught if "mlflow" in str(w.message).lower()] == []


def test_a_second_run_joins_the_experiment_quietly(logged, capfd):
    from trainwell.api import fit

    run, _ = logged
    capfd.readouterr()
    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(run.run_dir.parent),
           "train": {"epochs": 1, "batch_size": 32}, "doctor": {"monitor": False},
           "log": {"mlflow": True, "report": False}}
    second = fit(cfg, name="second", quiet=True)
    out, err = capfd.readouterr()
    assert err == "" and out.splitlines() == ["epoch 1:" + out.split("epoch 1:")[1].rstrip()]
    first_id = json.loads((run.run_dir / "meta.json").read_text())["mlflow"]["experiment_id"]
    meta = json.loads((second.run_dir / "meta.json").read_text())["mlflow"]
    assert meta["experiment_id"] == first_id
    client = client_for(meta["tracking_uri"])
    assert len(client.get_metric_history(meta["run_id"], "train_loss")) == 1
    assert "report.html" not in {a.path for a in client.list_artifacts(meta["run_id"])}


def test_tracking_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_uri(True, "runs") == (tmp_path / "runs" / "mlruns").as_uri()
    assert tracking_uri("store", "runs") == (tmp_path / "store").as_uri()
    for uri in ("http://localhost:5000", "file:///srv/mlruns", "sqlite:///mlflow.db"):
        assert tracking_uri(uri, "runs") == uri


def test_final_metrics_by_hand():
    results = {"test": {"test_loss": 0.5, "test_accuracy": 0.75},
               "best": {"epoch": 2, "step": 8, "val_loss": 0.4, "lr": 0.01}}
    assert final_metrics(results) == {"test_loss": 0.5, "test_accuracy": 0.75,
                                      "best_val_loss": 0.4, "best_lr": 0.01}


@pytest.mark.parametrize(("value", "words"), [
    ('""', "an empty tracking URI"),
    ('"ftp://host/x"', "'ftp://host/x' is not a tracking URI mlflow knows"),
    ("3", "log.mlflow"),
])
def test_bad_values_are_refused_at_load(tmp_path, monkeypatch, capsys, value, words):
    from trainwell.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(f'[data]\nsource = "builtin:iris"\n[log]\nmlflow = {value}\n')
    assert main(["train", "c.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "log.mlflow" in err and words in err, err
    assert not (tmp_path / "runs").exists()


def test_missing_mlflow_names_the_extra_before_any_run(tmp_path, monkeypatch, capsys):
    from trainwell.cli import main

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[log]\nmlflow = true\n')
    assert main(["train", "c.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install 'trainwell[mlflow]'" in err, err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_mlflow_is_imported_only_by_a_run_that_logs_to_it(tmp_path):
    (tmp_path / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[log]\nmlflow = true\n')
    code = ("import sys; from trainwell.config import load_config; "
            "cfg = load_config('c.toml'); assert cfg.log.mlflow is True; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_killed_run_resumes_into_the_same_mlflow_run(tmp_path, monkeypatch):
    """SIGKILLed after epoch 3's record (its checkpoint is of epoch 2) and resumed: one MLflow
    run with each epoch once, and TensorBoard's step losses each step once."""
    from killing import epoch_records, train_and_kill
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainwell.api import fit

    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": "runs",
           "train": {"epochs": 4, "batch_size": 32, "checkpoint_every": 1},
           "doctor": {"monitor": False},
           "log": {"mlflow": True, "report": False, "tensorboard": True,
                   "tensorboard_step_every": 1}}
    train_and_kill(cfg, tmp_path, epoch=3)
    monkeypatch.chdir(tmp_path)
    killed = Path("runs/killed")
    meta = json.loads((killed / "meta.json").read_text())["mlflow"]
    client = client_for(meta["tracking_uri"])
    assert [m.step for m in client.get_metric_history(meta["run_id"], "train_loss")] == [1, 2, 3]
    assert client.get_run(meta["run_id"]).info.status == "RUNNING"

    run = fit(resume=killed, quiet=True)
    assert json.loads((killed / "meta.json").read_text())["mlflow"] == meta
    history = client.get_metric_history(meta["run_id"], "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx(
        [r["train_loss"] for r in epoch_records(run.run_dir)])
    assert client.get_run(meta["run_id"]).info.status == "FINISHED"
    assert len(client.search_runs([meta["experiment_id"]])) == 1

    acc = EventAccumulator(str(killed / "tensorboard" / "steps"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("loss/train_step")]
    assert steps == list(range(1, epoch_records(run.run_dir)[-1]["step"] + 1))

"""``[heads]`` and ``[domain]`` from a config: data, model, training, results, predict, doctor,
resume and bad input, through ``trainwell.fit`` and the real command line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tomli_w
import torch

import trainwell
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError, DataError

MULTITASK = {
    "data": {"source": "builtin:multitask", "params": {"n_samples": 600, "labelled_label": 0.3}},
    "model": {"hidden": [32, 32]},
    "train": {
        "epochs": 6,
        "checkpoint_every": 2,
        "optimizer": {"name": "adam", "lr": 0.003},
        "early_stopping": {"metric": "val_label_accuracy"},
    },
    "log": {"report": False},
    "doctor": {"monitor": False},
    "heads": {
        "label": {"task": "multiclass"},
        "value": {"weight": 0.5, "metrics": ["r2"]},
    },
}
DANN = {
    "data": {
        "source": "builtin:rotated_moons",
        "params": {"n_samples": 300, "noise": 0.1, "angle": 35},
    },
    "domain": {
        "target": "builtin:rotated_moons",
        "params": {"n_samples": 300, "noise": 0.1, "angle": 35, "domain": "target"},
    },
    "model": {"hidden": [32, 32]},
    "train": {
        "epochs": 6,
        "batch_size": 32,
        "checkpoint_every": 2,
        "optimizer": {"name": "adam", "lr": 0.01},
    },
    "log": {"report": False},
    "doctor": {"monitor": False},
}


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in rows]


# ---------------------------------------------------------------------------- multitask


def test_multitask_run_writes_per_head_results_and_predicts_per_head(runs_dir):
    run = trainwell.fit(MULTITASK, name="mt", quiet=True)
    info = json.loads((run.run_dir / "data.json").read_text())
    assert info["task"] == "multitask"
    heads = info["heads"]
    assert heads["label"]["task"] == "multiclass" and heads["label"]["classes"] == [0, 1, 2]
    assert heads["value"]["task"] == "regression" and heads["value"]["index"] == [1]
    # 30% of the rows carry a label, all a value: no row is dropped
    assert 0.2 * 600 < heads["label"]["labelled"] < 0.4 * 600
    assert heads["value"]["labelled"] == 600
    row = run.history[-1]
    for key in ("train_label_loss", "train_value_loss", "val_label_accuracy", "val_value_r2"):
        assert math.isfinite(row[key]), key
    assert "val_value_rmse" not in row  # metrics = ["r2"] for the value head
    # the weighted total is the weighted sum of the heads' validation losses
    assert row["val_loss"] == pytest.approx(row["val_label_loss"] + 0.5 * row["val_value_loss"])
    test = run.results["test"]
    assert {"test_label_accuracy", "test_value_r2", "test_loss"} <= set(test)
    arrays = np.load(run.run_dir / "predictions.npz")
    assert {"label_y_pred", "label_proba", "label_y_true", "value_y_pred", "value_y_true"} <= set(
        arrays.files
    )
    lab = ~np.isnan(arrays["label_y_true"])
    acc = (arrays["label_y_pred"][lab] == arrays["label_y_true"][lab]).mean()
    assert acc == pytest.approx(test["test_label_accuracy"])
    # tw.load predicts every head, in the data's own labels
    pred = trainwell.load(run.run_dir)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(7, 10)),
                     columns=[f"x{i}" for i in range(10)])
    out = pred.predict(X)
    assert set(out) == {"label", "value"}
    assert out["label"].shape == (7,) and set(out["label"]) <= {0, 1, 2}
    assert out["value"].shape == (7, 1)
    proba = pred.predict_proba(X)
    assert set(proba) == {"label"} and np.allclose(proba["label"].sum(1), 1, atol=1e-5)
    table = pred.predict_table(X)
    assert list(table) == ["id", "label_prediction", "label_proba_0", "label_proba_1",
                           "label_proba_2", "value_prediction"]


def test_a_head_with_no_label_in_a_batch_trains_without_nan(runs_dir):
    cfg = {**MULTITASK, "data": {**MULTITASK["data"],
                                 "params": {"n_samples": 400, "labelled_label": 0.02}}}
    run = trainwell.fit(cfg, name="scarce", quiet=True)
    for row in run.history:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["train_value_loss"])
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_multitask_resume_ends_where_an_uninterrupted_run_ends(runs_dir):
    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 3:
                raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(MULTITASK, name="crashed", quiet=True, callbacks=[Crash()])
    trainwell.fit(resume=runs_dir / "crashed", quiet=True)
    full = trainwell.fit(MULTITASK, name="full", quiet=True)
    assert _metrics(runs_dir / "crashed") == _metrics(full.run_dir)
    a = trainwell.load(runs_dir / "crashed").model.state_dict()
    b = full.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_csv_with_partly_labelled_heads_and_string_classes(runs_dir, tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["kind"] = np.where(x[:, 0] > 0, "up", "down")
    frame.loc[::3, "kind"] = None  # a third of the rows without a kind
    frame["size"] = x[:, 1] * 2 + 1
    frame.loc[1::4, "size"] = np.nan
    frame["odd"] = (x[:, 2] > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    cfg = {
        "data": {"source": f"csv:{tmp_path / 't.csv'}"},
        "model": {"hidden": [16]},
        "train": {"epochs": 3},
        "heads": {"kind": {}, "size": {"task": "regression"},
                  "parity": {"target": "odd", "task": "binary", "weight": 0.3}},
    }
    run = trainwell.fit(cfg, name="csv", quiet=True)
    heads = json.loads((run.run_dir / "data.json").read_text())["heads"]
    assert heads["kind"]["task"] == "binary" and heads["kind"]["classes"] == ["down", "up"]
    assert heads["kind"]["labelled"] == n - len(range(0, n, 3))
    assert heads["size"]["labelled"] == n - len(range(1, n, 4))
    assert heads["parity"]["columns"] == ["odd"]
    out = trainwell.load(run.run_dir).predict(frame[["a", "b", "c"]])
    assert set(out["kind"]) <= {"up", "down"} and set(out["parity"]) <= {0, 1}


def test_the_doctor_checks_each_heads_initial_loss_against_its_own_chance(runs_dir):
    from trainwell.diagnose.from_config import doctor_from_config

    cfg = load_config({**MULTITASK, "doctor": {"checks": ["initial_loss"]}})
    report = doctor_from_config(cfg)
    label = report.get("heads.label.loss.initial")[0]
    value = report.get("heads.value.loss.initial")[0]
    assert label.status == "pass" and value.status == "pass"
    assert label.evidence["expected"] == pytest.approx(math.log(3))  # 3 classes: log C
    assert label.evidence["loss"] == pytest.approx(math.log(3), rel=0.05)
    assert value.evidence["loss_name"] == "l2"


# ---------------------------------------------------------------------------- domain


def test_dann_run_reports_target_and_domain_accuracy_against_its_baseline(runs_dir):
    cfg = {**DANN, "domain": {**DANN["domain"], "baseline": True},
           "train": {**DANN["train"], "epochs": 200, "checkpoint_every": 0}}
    run = trainwell.fit(cfg, name="dann", quiet=True)
    row = run.history[-1]
    assert {"train_domain_accuracy", "train_grl_lambda", "val_target_accuracy"} <= set(row)
    assert 0.0 < row["train_grl_lambda"] <= 1.0
    dom = json.loads((run.run_dir / "results.json").read_text())["domain"]
    assert dom["target_accuracy"] > dom["baseline"]["target_accuracy"] + 0.05
    verdict = dom["verdict"]
    assert verdict["status"] == "pass" and "adaptation helped" in verdict["text"].lower()
    # the last epoch's weights are kept (domain.restore_best = false)
    assert run.results["best_epoch"] == len(run.history)
    info = json.loads((run.run_dir / "data.json").read_text())
    assert info["domain"]["n_rows"] == 300 and info["domain"]["labelled"] is True
    pred = trainwell.load(run.run_dir)
    assert pred.predict(np.zeros((3, 2))).shape == (3,)


def test_dann_resume_restores_both_data_streams(runs_dir):
    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 3:
                raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(DANN, name="crashed", quiet=True, callbacks=[Crash()])
    trainwell.fit(resume=runs_dir / "crashed", quiet=True)
    full = trainwell.fit(DANN, name="full", quiet=True)
    assert _metrics(runs_dir / "crashed") == _metrics(full.run_dir)


SIGKILL_DANN = textwrap.dedent("""
    import os, signal, sys
    import trainwell

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == 3:  # the checkpoint of epoch 2 exists
                os.kill(os.getpid(), signal.SIGKILL)

    trainwell.fit(sys.argv[1], name="killed", quiet=True, callbacks=[Kill()])
""")


def test_dann_sigkill_then_resume_from_the_command_line(runs_dir, tmp_path):
    (tmp_path / "dann.toml").write_text(tomli_w.dumps(DANN))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SIGKILL_DANN, "dann.toml"], cwd=tmp_path,
                          env=env, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    proc = subprocess.run([sys.executable, "-m", "trainwell", "train", "--resume", "runs/killed",
                           "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    full = trainwell.fit(DANN, name="full", quiet=True)
    assert _metrics(runs_dir / "killed") == _metrics(full.run_dir)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"heads": {"label": {"target": "labl"}}},
         "heads.label.target column 'labl' is not a column of builtin:multitask; did you mean "
         "'label'?"),
        ({"heads": {"a": {"target": "label", "task": "multiclass"},
                    "b": {"target": "label", "task": "regression"}}},
         "heads.b.task: column 'label' is also the target of heads.a, with task multiclass"),
        ({"heads": {"label": {"weight": -1}}}, "heads.label.weight"),
        ({"heads": {"label": {"weight": 0}, "value": {"weight": 0}}}, "every weight is 0"),
        ({"heads": {"label": {"task": "regression", "loss": "cross_entropy"}}},
         "heads.label.loss"),
        ({"heads": {"label": {"metrics": ["r2"], "task": "multiclass"}}},
         "heads.label.metrics: ['r2'] are not metrics of a multiclass head"),
        ({"train": {"early_stopping": {"metric": "val_lable_accuracy"}}},
         "train.early_stopping.metric = 'val_lable_accuracy' names no head"),
        ({"tune": {"metric": "val_value_bogus"}},
         "tune.metric = 'val_value_bogus': head 'value' logs val_value_loss and"),
        ({"heads": {"loss": {}}}, "heads.loss: a head's name must start with a letter"),
        ({"heads": {"label": {}, "value": {"metrics": ["accuracy"]}}},
         "heads.value.metrics: 'accuracy' is not a metric of the regression head 'value'"),
        ({"heads": {"label": {}, "value": {}},
          "train": {"early_stopping": {"metric": "val_label_r2"}}},
         "train.early_stopping.metric = 'val_label_r2' is not logged by this run's heads"),
        ({"data": {"source": "builtin:multitask", "columns": {"value": "ignore"}}},
         "heads.value learns column(s) ['value'], which data.columns marks \"ignore\""),
        ({"data": {"source": "builtin:multitask", "target": "label"}},
         "data.target = 'label' does not apply with [heads]"),
    ],
)
def test_bad_heads_are_refused_on_the_command_line_and_write_nothing(
    runs_dir, tmp_path, capsys, change, message
):
    cfg = {**MULTITASK, **{k: v for k, v in change.items() if k != "heads"}}
    if "heads" in change:
        cfg["heads"] = change["heads"]
    (tmp_path / "bad.toml").write_text(tomli_w.dumps(cfg))
    assert main(["train", "bad.toml", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error:") and message in "\n".join(err), err
    assert list(runs_dir.iterdir()) == []


def test_a_domain_target_without_the_source_features_is_refused(runs_dir, tmp_path, capsys):
    pd.DataFrame({"x0": [0.1, 0.2], "other": [1.0, 2.0]}).to_csv(tmp_path / "t.csv", index=False)
    cfg = {**DANN, "domain": {"target": f"csv:{tmp_path / 't.csv'}"}}
    (tmp_path / "bad.toml").write_text(tomli_w.dumps(cfg))
    assert main(["train", "bad.toml", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "domain.target: csv file" in err and "lacks the source's feature column(s) ['x1']" in err
    assert list(runs_dir.iterdir()) == []


def test_a_dann_learning_rate_with_another_schedule_is_refused(runs_dir):
    cfg = {**DANN, "domain": {**DANN["domain"], "lr_schedule": "dann"},
           "train": {**DANN["train"], "schedule": "cosine"}}
    with pytest.raises(ConfigError, match="domain.lr_schedule = 'dann' sets the learning rate"):
        trainwell.fit(cfg, quiet=True)
    assert list(runs_dir.iterdir()) == []


def test_missing_values_in_the_domain_target_name_the_target(runs_dir, tmp_path):
    pd.DataFrame({"x0": [0.1, 0.2, 0.3], "x1": [1.0, None, 2.0]}).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"^domain.target: csv file .*t.csv: .*missing values"):
        trainwell.fit({**DANN, "domain": {"target": f"csv:{tmp_path / 't.csv'}"}}, quiet=True)
    assert list(runs_dir.iterdir()) == []


def test_the_doctor_checks_the_domain_classifier_against_log_2(runs_dir):
    from trainwell.diagnose.from_config import doctor_from_config

    report = doctor_from_config(load_config({**DANN, "doctor": {"checks": ["initial_loss"]}}))
    found = report.get("heads.domain.loss.initial")[0]
    assert found.status == "pass" and found.evidence["expected"] == pytest.approx(math.log(2))
    assert report.get("heads.label.loss.initial")[0].status == "pass"


def test_a_domain_target_with_unknown_classes_is_refused(runs_dir, tmp_path):
    pd.DataFrame({"x0": [0.1, 0.2], "x1": [1.0, 2.0], "target": [0, 7]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    with pytest.raises(DataError, match=r"labels \['7'\] that are not classes of the source"):
        trainwell.fit({**DANN, "domain": {"target": f"csv:{tmp_path / 't.csv'}"}}, quiet=True)
    assert list(runs_dir.iterdir()) == []


def test_head_metric_names_are_those_the_metrics_module_logs():
    from trainwell.train.heads_config import HEAD_METRICS
    from trainwell.train.metrics import metric_names

    for task, names in HEAD_METRICS.items():
        assert [n.removeprefix("_") for n in metric_names(task, 3, 5, "")][1:] == names


def test_heads_and_domain_cannot_be_combined():
    with pytest.raises(ConfigError, match=r"\[heads\] and \[domain\] cannot be combined"):
        load_config({**MULTITASK, "domain": DANN["domain"]})


def test_heads_on_images_are_refused(runs_dir):
    with pytest.raises(DataError, match=r"\[heads\] takes a table"):
        trainwell.fit({"data": {"source": "builtin:digits_images"},
                       "heads": {"digit": {"target": "target"}}}, quiet=True)


def test_heads_on_a_users_own_module_from_python(runs_dir, tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self, input_shape, n_outputs):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(input_shape[0], 24), nn.Tanh())
                self.head = nn.Linear(24, n_outputs)

            def forward(self, x):
                return self.head(self.body(x))

        def make(input_shape, n_outputs):
            return Net(input_shape, n_outputs)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**MULTITASK, "model": {"arch": "python:mynets:make"}}
    with pytest.raises(ConfigError, match="--trust-code"):
        trainwell.fit(cfg, name="untrusted", quiet=True)
    run = trainwell.fit(cfg, name="own", quiet=True, trust_code=True)
    assert set(dict(run.model.heads.named_children())) == {"label", "value"}
    assert isinstance(run.model.trunk.body[1], torch.nn.Tanh)  # the user's trunk, kept
    out = trainwell.load(run.run_dir, trust_code=True).predict(np.zeros((2, 10)))
    assert out["label"].shape == (2,) and out["value"].shape == (2, 1)


def test_a_tune_metric_a_head_does_not_log_is_refused_before_the_study(runs_dir, tmp_path,
                                                                       capsys):
    cfg = {**MULTITASK, "heads": {"label": {}, "value": {}},
           "tune": {"trials": 2, "metric": "val_label_rmse",
                    "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)"}}}
    (tmp_path / "t.toml").write_text(tomli_w.dumps(cfg))
    assert main(["tune", "t.toml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: tune.metric = 'val_label_rmse' is not logged by this run's "
                             "heads; it logs val_loss and val_label_loss, val_label_accuracy")
    assert list(runs_dir.iterdir()) == []

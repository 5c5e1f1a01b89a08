"""Regression targets far from unit scale: standardized on train, trained on, given back in
their own units (predictions, RMSE / MAE), saved with the run; the doctor names the scale."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import trainwell
from trainwell.data import prepare
from trainwell.data.config import DataConfig
from trainwell.data.pipeline import Pipeline, TargetScale, fit_target_scale
from trainwell.data.summary import describe
from trainwell.diagnose import doctor
from trainwell.errors import RunError
from trainwell.train.objective import Supervised

W = np.array([1.0, -0.5, 0.25, 0.0])


def truth(X: np.ndarray) -> np.ndarray:
    """The known function: about 1e6, moving by about 1e5."""
    return 1e6 + 1e5 * (X @ W + 0.3 * np.sin(2 * X[:, 0]))


@pytest.fixture
def large_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["target"] = truth(X) + rng.normal(scale=1e3, size=len(X))
    path = tmp_path / "large.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _config(path, **data):
    return {
        "data": {"source": f"csv:{path}", **data},
        "model": {"hidden": [32]},
        "train": {"epochs": 30, "batch_size": 32, "checkpoint_every": 2,
                  "optimizer": {"name": "adam", "lr": 0.01}},
        "log": {"report": False},
    }


def _metrics(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time", "time")}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_target_around_1e6_trains_with_the_default_and_comes_back_in_its_units(
        runs_dir, large_csv):
    path, frame = large_csv
    run = trainwell.fit(_config(path), name="auto", quiet=True)
    scale = run.prepared.target_scale
    test_rows = run.prepared.test.index
    train_y = frame["target"].to_numpy()[run.prepared.train.index]
    # fitted on the training rows only
    np.testing.assert_allclose(scale.mean, [train_y.mean()], rtol=1e-6)
    np.testing.assert_allclose(scale.std, [train_y.std()], rtol=1e-5)
    assert run.metrics["test_r2"] > 0.8
    # predictions.npz, Predictor.predict and predict_table: the target's own units
    npz = np.load(run.run_dir / "predictions.npz", allow_pickle=False)
    np.testing.assert_allclose(npz["y_true"].reshape(-1), frame["target"].to_numpy()[test_rows],
                               rtol=1e-6)
    p = trainwell.load(run.run_dir)
    features = frame.drop(columns="target").iloc[test_rows]
    pred = p.predict(features).reshape(-1)
    np.testing.assert_allclose(pred, npz["y_pred"].reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(p.predict_table(features)["prediction"], pred, rtol=1e-6)
    known = truth(features.to_numpy())
    assert np.sqrt(np.mean((pred - known) ** 2)) < 0.3 * known.std()
    assert abs(pred.mean() - 1e6) < 0.1e6
    # RMSE / MAE are reported in the target's units; the loss stays on the standardized scale
    err = npz["y_pred"].reshape(-1) - npz["y_true"].reshape(-1)
    assert run.metrics["test_rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-4)
    assert run.metrics["test_mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-4)
    assert run.metrics["test_rmse"] > 1e3 and run.metrics["test_loss"] < 1.0
    assert run.history[0]["train_loss"] < 5.0  # about 1 per target at init, not 1e12
    # saved with the run
    doc = json.loads((run.run_dir / "preprocess.json").read_text())
    assert doc["format"] == 2 and doc["target_scale"] == {"columns": ["target"]}
    saved = json.loads((run.run_dir / "data.json").read_text())["target_scale"]
    assert saved["mean"] == pytest.approx(scale.mean.tolist())


def test_without_standardization_the_same_target_does_not_train(runs_dir, large_csv):
    path, _ = large_csv
    run = trainwell.fit(_config(path, target_scale="none"), name="none", quiet=True)
    assert run.prepared.target_scale is None
    assert run.metrics["test_r2"] < 0.0
    assert json.loads((run.run_dir / "preprocess.json").read_text())["format"] == 1


def test_a_crashed_run_with_a_standardized_target_resumes_exactly(runs_dir, large_csv):
    path, _ = large_csv
    cfg = _config(path)
    cfg["train"]["epochs"] = 8

    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 5:  # the checkpoint of epoch 4 exists
                raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(cfg, name="crashed", quiet=True, callbacks=[Crash()])
    resumed = trainwell.fit(resume=runs_dir / "crashed", quiet=True)
    full = trainwell.fit(cfg, name="full", quiet=True)
    assert _metrics(resumed.run_dir) == _metrics(full.run_dir)
    assert resumed.results["test"] == full.results["test"]
    a = np.load(resumed.run_dir / "predictions.npz")["y_pred"]
    np.testing.assert_array_equal(a, np.load(full.run_dir / "predictions.npz")["y_pred"])
    assert full.results["test"]["test_rmse"] > 1e3  # in the target's units after the resume too


def _targets(n=200, mean=0.0, std=1.0, seed=0):
    return np.random.default_rng(seed).normal(mean, std, size=(n, 1)).astype(np.float32)


@pytest.mark.parametrize(("mean", "std", "mode", "standardized"), [
    (1e6, 1e5, "auto", True),
    (150.0, 77.0, "auto", True),
    (0.0, 0.01, "auto", True),
    (0.5, 2.0, "auto", False),
    (0.5, 2.0, "standardize", True),
    (1e6, 1e5, "none", False),
])
def test_the_mode_decides_and_says_why(mean, std, mode, standardized):
    scale, how = fit_target_scale(_targets(mean=mean, std=std), mode, ["y"])
    assert (scale is not None) == standardized
    assert f'data.target_scale = "{mode}"' in how and "train mean" in how
    if scale is not None:
        z = scale.transform(_targets(mean=mean, std=std))
        assert abs(z.mean()) < 1e-3 and z.std() == pytest.approx(1.0, rel=1e-3)


def test_inverse_takes_tensors_and_arrays_of_one_or_several_targets():
    scale = TargetScale(np.array([1e6, -3.0]), np.array([1e5, 0.5]), ["a", "b"])
    z = np.array([[1.0, 2.0], [0.0, -2.0]])
    expected = np.array([[1.1e6, -2.0], [1e6, -4.0]])
    np.testing.assert_allclose(scale.inverse(z), expected)
    np.testing.assert_allclose(scale.inverse(torch.tensor(z, dtype=torch.float32)).numpy(),
                               expected)
    np.testing.assert_allclose(scale.transform(expected), z, atol=1e-6)
    one = TargetScale(np.array([10.0]), np.array([2.0]))
    np.testing.assert_allclose(one.inverse(torch.tensor([1.0, -1.0])).numpy(), [12.0, 8.0])
    np.testing.assert_allclose(one.inverse(np.array([[1.0]])), [[12.0]])


def test_the_scale_round_trips_through_preprocess_files_and_bad_files_are_refused(
        tmp_path, large_csv):
    path, _ = large_csv
    data = prepare(DataConfig(source=f"csv:{path}", target_scale="standardize"), seed=0)
    data.save(tmp_path)
    loaded = Pipeline.load(tmp_path)
    assert loaded.target_scale is not None and loaded.target_scale.columns == ["target"]
    np.testing.assert_array_equal(loaded.target_scale.mean, data.target_scale.mean)
    np.testing.assert_array_equal(loaded.target_scale.std, data.target_scale.std)
    doc, arrays = data.pipeline.state()
    del arrays["target.std"]
    with pytest.raises(RunError, match="lacks target.mean / target.std"):
        Pipeline.from_state(doc, arrays)
    doc, arrays = data.pipeline.state()
    arrays["target.std"] = np.array([0.0])
    with pytest.raises(RunError, match="std > 0"):
        Pipeline.from_state(doc, arrays)


def test_describe_says_what_the_model_trains_on(large_csv):
    path, _ = large_csv
    text = describe(prepare(DataConfig(source=f"csv:{path}"), seed=0))
    assert 'target scale: standardized on train (data.target_scale = "auto"' in text
    assert "predictions, RMSE and MAE are given in the target's own units" in text
    kept = describe(prepare(DataConfig(source=f"csv:{path}", target_scale="none"), seed=0))
    assert 'kept as is (data.target_scale = "none"' in kept
    assert 'set data.target_scale = "auto" or "standardize"' in kept


def test_the_splits_hold_the_standardized_target_and_classification_is_untouched(large_csv):
    path, frame = large_csv
    data = prepare(DataConfig(source=f"csv:{path}"), seed=0)
    y = frame["target"].to_numpy()
    for split in data.splits.values():
        np.testing.assert_allclose(data.target_scale.inverse(split.y.numpy()).reshape(-1),
                                   y[split.index], rtol=1e-6)
    assert abs(float(data.train.y.mean())) < 1e-4
    assert data.info["target_stats"]["train"]["mean"][0] == pytest.approx(1e6, rel=0.1)
    iris = prepare(DataConfig(source="builtin:iris", target_scale="standardize"), seed=0)
    assert iris.target_scale is None and iris.train.y.dtype == torch.int64


def test_supervised_reports_rmse_and_mae_in_the_target_units():
    scale = TargetScale(np.array([1e6]), np.array([1e5]))
    net = torch.nn.Linear(2, 1)
    X = torch.randn(64, 2)
    z = torch.randn(64, 1)
    obj = Supervised("l2", task="regression", target_units=scale.inverse)
    obj.setup(net, (X, z))
    res = obj.evaluate(net, [(X, z)])
    with torch.no_grad():
        out = net(X).double()
    err = (out - z.double()) * 1e5
    assert res["val_rmse"] == pytest.approx(float(err.square().mean().sqrt()), rel=1e-6)
    assert res["val_mae"] == pytest.approx(float(err.abs().mean()), rel=1e-6)
    assert res["val_loss"] == pytest.approx(float((out - z.double()).square().mean()), rel=1e-5)
    plain = Supervised("l2", task="regression")
    plain.setup(net, (X, z))
    assert plain.evaluate(net, [(X, z)])["val_r2"] == pytest.approx(res["val_r2"], rel=1e-6)


def test_the_doctor_names_the_target_scale_and_the_fix():
    X = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    y = (1e6 + 1e5 * X[:, :1]).float()
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    found = doctor(net, (X, y), checks=["data"]).get("data.target_scale")[0]
    assert found.status == "fail" and "not standardized (scale " in found.title
    assert f"{float(y.abs().mean()):.3g}" in found.title or f"{float(y.mean()):.3g}" in found.title
    assert found.evidence["mean"][0] == pytest.approx(float(y.mean()), rel=1e-4)
    assert 'data.target_scale = "standardize"' in found.advice[0]
    medium = doctor(net, (X, 40 + 20 * X[:, :1]), checks=["data"]).get("data.target_scale")[0]
    assert medium.status == "warn" and "std" in medium.detail
    z = (y - y.mean()) / y.std()
    assert doctor(net, (X, z), checks=["data"]).get("data.target_scale")[0].status == "pass"
    labels = (X[:, 0] > 0).long()
    assert not doctor(torch.nn.Linear(4, 2), (X, labels), checks=["data"]).get(
        "data.target_scale")


def test_several_heads_keep_their_targets_and_refuse_an_explicit_standardize():
    from trainwell.config import load_config
    from trainwell.errors import ConfigError

    heads = {"data": {"source": "builtin:multitask"},
             "heads": {"label": {"task": "multiclass"}, "value": {}}}
    cfg = load_config(heads)
    data = prepare(cfg.data, cfg.seed, cfg.head_targets())
    assert data.task == "multitask" and data.target_scale is None
    with pytest.raises(ConfigError, match="data.target_scale = 'standardize' does not apply"):
        load_config({**heads, "data": {**heads["data"], "target_scale": "standardize"}})

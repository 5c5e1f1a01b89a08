"""``fit(config, data=(X, y))`` and ``fit(config, data=frame)``: in-memory data gives the run a
file source would give (same split, preprocessing, weights, files), predicts without the data,
and resumes only from Python with the same data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import trainwell as tw
from trainwell.cli import main
from trainwell.errors import ConfigError, DataError
from trainwell.train.callbacks import Callback


def _cfg(runs_dir, epochs=2, **data):
    return {"runs_dir": str(runs_dir), "seed": 3, "train": {"epochs": epochs, "batch_size": 32},
            "model": {"arch": "mlp", "hidden": [8]}, "log": {"report": False},
            **({"data": data} if data else {})}


def _iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


def _same_run(a, b) -> None:
    assert a.metrics == {**b.metrics, "wall_time": a.metrics["wall_time"]}
    wa, wb = load_file(a.run_dir / "model.safetensors"), load_file(b.run_dir / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a.run_dir / "preprocess.safetensors").read_bytes() == (
        b.run_dir / "preprocess.safetensors").read_bytes()
    da, db = (json.loads((r.run_dir / "data.json").read_text()) for r in (a, b))
    assert da["splits"] == db["splits"] and da["class_counts"] == db["class_counts"]
    files = {p.name for p in a.run_dir.iterdir()} ^ {p.name for p in b.run_dir.iterdir()}
    assert not files


def test_arrays_and_tensors_give_the_run_of_the_same_npz(runs_dir):
    X, y = _iris()
    np.savez(runs_dir.parent / "iris.npz", X=X, y=y)
    from_file = tw.fit(_cfg(runs_dir, source="npz:iris.npz"), quiet=True)
    from_arrays = tw.fit(_cfg(runs_dir), data=(X, y), quiet=True)
    from_tensors = tw.fit(_cfg(runs_dir), data=(torch.from_numpy(X), torch.from_numpy(y)),
                          quiet=True)
    _same_run(from_file, from_arrays)
    _same_run(from_file, from_tensors)
    assert from_arrays.run_dir.name == "arrays-mlp"
    info = json.loads((from_arrays.run_dir / "data.json").read_text())
    assert info["memory"]["rows"] == 150 and info["memory"]["X_shape"] == [150, 4]
    assert info["source"] == f"memory:{info['memory']['sha256']}"
    # the same bytes, the same fingerprint: the tensors' run names the same data
    assert json.loads((from_tensors.run_dir / "data.json").read_text())["source"] == info["source"]
    # predicting needs only the run directory
    p = tw.load(from_arrays.run_dir)
    assert np.array_equal(p.predict(X[:20]), tw.load(from_file.run_dir).predict(X[:20]))


def test_image_arrays_give_the_run_of_the_same_npz(runs_dir):
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.images[:300].reshape(-1, 1, 8, 8).astype(np.float32)
    y = d.target[:300]
    np.savez(runs_dir.parent / "digits.npz", X=X, y=y)
    cfg = {**_cfg(runs_dir, epochs=1), "model": {"arch": "mlp", "hidden": [16]}}
    a = tw.fit({**cfg, "data": {"source": "npz:digits.npz"}}, quiet=True)
    b = tw.fit(cfg, data=(X, y), quiet=True)
    _same_run(a, b)
    assert json.loads((b.run_dir / "data.json").read_text())["input_shape"] == [1, 8, 8]
    assert np.array_equal(tw.load(b.run_dir).predict(X[:10]), tw.load(a.run_dir).predict(X[:10]))


def _frame(n=120):
    rng = np.random.default_rng(0)
    color = rng.choice(["red", "green", "blue"], n)
    x = rng.normal(size=n)
    label = np.where((color == "red") ^ (x > 0), "yes", "no")
    return pd.DataFrame({"x": x, "size": rng.normal(size=n), "color": color, "label": label})


def test_a_dataframe_with_a_categorical_column_gives_the_run_of_the_same_csv(runs_dir):
    frame = _frame()
    frame.to_csv(runs_dir.parent / "t.csv", index=False)
    a = tw.fit(_cfg(runs_dir, source="csv:t.csv", target="label"), quiet=True)
    b = tw.fit(_cfg(runs_dir, target="label"), data=frame, quiet=True)
    _same_run(a, b)
    assert b.run_dir.name == "dataframe-mlp"
    pre = json.loads((b.run_dir / "preprocess.json").read_text())
    assert ["color", "categorical"] in pre["input"]["columns"]
    assert [s["name"] for s in pre["steps"]] == ["onehot", "standardize"]
    new = frame.drop(columns="label").iloc[:15]
    assert list(tw.load(b.run_dir).predict(new)) == list(tw.load(a.run_dir).predict(new))


@pytest.mark.parametrize(("data", "match"), [
    ((np.zeros(10), np.zeros(10)), r"data=\(X, y\): X must have shape \(n, features\)"),
    ((np.zeros((10, 3)), np.zeros(9)), r"data=\(X, y\): X has 10 rows but y has 9"),
    ((np.zeros((10, 3)), np.r_[np.zeros(8), np.nan, 1.0]),
     r"data=\(X, y\): y has 1 missing .* rows \[8\]"),
    ((np.zeros((10, 3)), np.zeros((10, 2, 2))), r"data=\(X, y\): y must have shape"),
    ((np.array([["a", "b"]] * 4), np.zeros(4)), r"data=\(X, y\): X must hold numbers"),
    ((np.zeros((4, 2)),), r"data= takes \(X, y\) .* got tuple of length 1"),
    (pd.DataFrame({"label": [1, 2]}), r"data=DataFrame must have rows and at least two"),
    ((np.zeros((6, 8, 8, 3)), np.zeros(6)),  # channels last would train on 8 channels of 8x3
     r"X has shape \(6, 8, 8, 3\), images with their channels last .* np.moveaxis\(X, -1, 1\)"),
])
def test_bad_data_is_one_error_naming_the_argument_and_leaves_no_run(runs_dir, data, match):
    with pytest.raises(DataError, match=match):
        tw.fit(_cfg(runs_dir), data=data, quiet=True)
    assert not list(runs_dir.iterdir())


def test_missing_labels_are_dropped_when_the_config_says_so(runs_dir):
    X, y = _iris()
    y = y.astype(float)
    y[[0, 60]] = np.nan
    run = tw.fit(_cfg(runs_dir, epochs=1, missing_target="drop"), data=(X, y), quiet=True)
    info = json.loads((run.run_dir / "data.json").read_text())
    assert sum(info["splits"].values()) == 148


class _InterruptAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self, trainer) -> None:
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_needs_the_same_data_from_python(runs_dir, capsys):
    X, y = _iris()
    whole = tw.fit(_cfg(runs_dir, epochs=3), data=(X, y), quiet=True, name="whole")
    with pytest.raises(KeyboardInterrupt):
        tw.fit(_cfg(runs_dir, epochs=3), data=(X, y), quiet=True, name="cut",
               callbacks=[_InterruptAt(1)])
    cut = runs_dir / "cut"
    # the command line has no data to give: one error line saying how to resume
    assert main(["train", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "fit(data=(X, y), resume=" in err[0]
    other = X.copy()
    other[0, 0] += 1.0
    with pytest.raises(DataError, match="sha256 .* trained on data with sha256"):
        tw.fit(data=(other, y), resume=cut, quiet=True)
    run = tw.fit(data=(X, y), resume=cut, quiet=True)
    assert run.status == "completed"
    wa, wb = load_file(whole.run_dir / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_run_of_images_from_python_prints_in_one_line(runs_dir):
    """(n, H, W) float64 images with text labels train as 1xHxW images; the Run a notebook shows
    is one line (its directory, status, best epoch, test metrics), not the tensors it holds."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 4, 4))
    y = np.where(X.mean(axis=(1, 2)) > 0.5, "bright", "dark")
    run = tw.fit(_cfg(runs_dir, epochs=1), data=(X, y), quiet=True)
    assert run.prepared.input_shape == (1, 4, 4) and run.prepared.classes == ["bright", "dark"]
    text = repr(run)
    assert "\n" not in text and "tensor" not in text and len(text) < 300, text[:500]
    assert text.startswith(f"Run({str(run.run_dir)!r}, status='completed', best_epoch=1, ")
    assert f"test_accuracy={run.results['test']['test_accuracy']:.4g}" in text


def _tune_cfg(runs_dir, **data):
    cfg = _cfg(runs_dir, epochs=2, **data)
    cfg["tune"] = {"trials": 3, "method": "random", "metric": "val_loss",
                   "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)"}}
    return cfg


def test_tune_on_arrays_finds_the_trials_of_the_same_npz(runs_dir):
    """tune(data=(X, y)) runs the study a file source runs: the same trials with the same
    values; resuming needs the same data, and several workers are refused before a study
    directory exists."""
    X, y = _iris()
    np.savez(runs_dir.parent / "iris.npz", X=X, y=y)
    from_file = tw.tune(_tune_cfg(runs_dir, source="npz:iris.npz"), name="file")
    from_arrays = tw.tune(_tune_cfg(runs_dir), data=(X, y), name="arrays")
    studies = (from_file, from_arrays)
    values = [[(t.params, t.value) for t in s.optuna_study.trials] for s in studies]
    assert values[0] == values[1] and len(values[0]) == 3
    config = (runs_dir / "arrays" / "config.toml").read_text()
    assert 'source = "memory:' in config
    with pytest.raises(DataError, match="its sha256 is"):
        tw.tune(resume=runs_dir / "arrays", data=(X[::-1].copy(), y[::-1].copy()))
    with pytest.raises(DataError, match=r"give the same data again: trainwell.tune\(resume="):
        tw.tune(resume=runs_dir / "arrays", trials=4)
    again = tw.tune(resume=runs_dir / "arrays", data=(X, y), trials=4)
    assert len([t for t in again.optuna_study.trials if t.value is not None]) == 4
    before = {p.name for p in runs_dir.iterdir()}
    with pytest.raises(ConfigError, match="workers must be 1"):
        tw.tune(_tune_cfg(runs_dir), data=(X, y), workers=2)
    assert {p.name for p in runs_dir.iterdir()} == before


# ---------------------------------------------------------------------------- ensemble(data=)


def _ens_cfg(runs_dir):
    return {**_cfg(runs_dir, epochs=3), "ensemble": {"jobs": 1}}


def test_ensemble_on_arrays_equals_the_ensemble_of_the_same_npz(runs_dir):
    X, y = _iris()
    np.savez(runs_dir.parent / "iris.npz", X=X, y=y)
    from_file = tw.ensemble({**_ens_cfg(runs_dir), "data": {"source": "npz:iris.npz"}},
                            members=2, name="file")
    from_arrays = tw.ensemble(_ens_cfg(runs_dir), data=(X, y), members=2)
    assert from_arrays.run_dir.name == "arrays-mlp-ensemble"
    assert from_arrays.results["ensemble"] == from_file.results["ensemble"]
    for k in ("0", "1"):
        a, b = (load_file(e.run_dir / "members" / k / "model.safetensors")
                for e in (from_arrays, from_file))
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert np.array_equal(from_arrays.predict(X[:20]), from_file.predict(X[:20]))
    # two members trained at once (forked processes read the held data): the same members
    forked = tw.ensemble({**_ens_cfg(runs_dir), "ensemble": {"jobs": 2}}, data=(X, y), members=2,
                         name="forked")
    assert json.loads((forked.run_dir / "members" / "1" / "meta.json").read_text())[
        "status"] == "completed"
    assert forked.results["ensemble"]["accuracy"] > 0.6


def test_a_snapshot_ensemble_on_a_dataframe(runs_dir):
    X, y = _iris()
    frame = pd.DataFrame(X, columns=list("abcd")).assign(kind=y)
    ens = tw.ensemble(_ens_cfg(runs_dir), data=frame, snapshot=2,
                      overrides=['data.target="kind"', "train.epochs=4"])
    assert ens.run_dir.name == "dataframe-mlp-snapshots"
    assert sorted(p.name for p in (ens.run_dir / "members").iterdir()) == ["0", "1"]
    assert ens.results["ensemble"]["accuracy"] > 0.5


def test_a_killed_ensemble_on_arrays_resumes_only_with_its_data(runs_dir, monkeypatch):
    import trainwell.ensemble_run as er

    X, y = _iris()
    train = er.train_member

    def interrupted(path, k, quiet=True):  # member 1 is interrupted, as by Ctrl-C
        if k == 1:
            raise KeyboardInterrupt
        train(path, k, quiet)

    monkeypatch.setattr(er, "train_member", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tw.ensemble(_ens_cfg(runs_dir), data=(X, y), members=2)
    monkeypatch.setattr(er, "train_member", train)
    path = runs_dir / "arrays-mlp-ensemble"
    first = (path / "members" / "0" / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(DataError, match=r"trainwell\.ensemble\(resume=.*data=\(X, y\)"):
        tw.ensemble(resume=path)
    with pytest.raises(DataError, match="sha256"):
        tw.ensemble(resume=path, data=(X[::-1], y[::-1]))
    ens = tw.ensemble(resume=path, data=(X, y))
    assert ens.results["ensemble"]["accuracy"] > 0.6
    assert (path / "members" / "0" / "model.safetensors").stat().st_mtime_ns == first
    assert json.loads((path / "members" / "1" / "meta.json").read_text())["status"] == "completed"


def test_ensemble_data_is_refused_with_a_study_and_a_memory_source_without_data(runs_dir):
    X, y = _iris()
    with pytest.raises(ConfigError, match="from_study .* give no data="):
        tw.ensemble(from_study=runs_dir / "none", data=(X, y))
    cfg = {**_ens_cfg(runs_dir), "data": {"source": "memory:" + "ab" * 32}}
    with pytest.raises(DataError, match=r"trainwell\.ensemble\(config, data="):
        tw.ensemble(cfg, members=2)
    assert list(runs_dir.iterdir()) == []

"""SWA with a frozen backbone: ``update_bn`` re-estimates BatchNorm statistics of the averaged
network, but a frozen BatchNorm layer keeps the statistics it was loaded with, as the run's
own model does."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

import trainwell
from trainwell.runs import read_safetensors

MODEL = {"arch": "cnn", "channels": [6, 12], "hidden": [], "norm": "batch"}


def _npz(path, X, y):
    np.savez(path, X=X, y=y)
    return f"npz:{path}"


def test_swa_on_a_probe_keeps_the_frozen_batchnorm_statistics(tmp_path):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    source = _npz(tmp_path / "source.npz", X[y < 5][:300], y[y < 5][:300])
    some = np.concatenate([np.flatnonzero(y == c)[:30] for c in range(5, 10)])
    target = _npz(tmp_path / "target.npz", X[some], y[some])
    common = {"runs_dir": str(tmp_path / "runs"), "log": {"report": False}, "model": MODEL}
    src_dir = trainwell.fit({**common, "data": {"source": source}, "train": {"epochs": 2}},
                            name="source", quiet=True).run_dir
    run = trainwell.fit({**common, "data": {"source": target},
                         "model": {**MODEL, "init_from": str(src_dir), "transfer": "probe"},
                         "train": {"epochs": 3, "average": {"name": "swa", "start": 2}}},
                        name="probe-swa", quiet=True)
    assert run.results["average"]["name"] == "swa" and run.results["average"]["count"] == 2
    loaded = read_safetensors(src_dir / "model.safetensors")
    kept = read_safetensors(run.run_dir / "model.safetensors")
    norms = [k for k in loaded if "_norm." in k]
    assert any(k.endswith("running_mean") for k in norms)
    for key in norms:  # statistics and affine weights of the frozen layers, bit for bit
        assert torch.equal(kept[key], loaded[key]), key
    assert not torch.equal(kept["head.weight"], torch.zeros_like(kept["head.weight"]))

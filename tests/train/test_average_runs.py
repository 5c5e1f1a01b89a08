"""Weight averaging in whole runs: exact resume after SIGKILL (EMA and SWA), the averaged
weights in model.safetensors, ``trainwell train`` on a CNN with BatchNorm, and the refusals
of the command."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from killing import epoch_records, train_and_kill

import trainwell
from trainwell.cli import main
from trainwell.runs import read_safetensors
from trainwell.train.checkpoint import load_checkpoint

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16], "norm": "batch", "dropout": 0.1},
    "train": {
        "epochs": 6,
        "batch_size": 16,
        "checkpoint_every": 1,
        "optimizer": {"name": "adam", "lr": 0.01},
    },
}
AVERAGES = {
    "ema": {"name": "ema"},
    "swa": {"name": "swa", "start": 3, "lr": 0.003},
}

class KeepAveraged:
    """The averaged weights at each epoch end where they are the kept ones."""

    def __init__(self) -> None:
        self.averaged: dict[int, dict[str, torch.Tensor]] = {}

    def after_epoch(self, trainer):
        if trainer.averager.started(trainer.epoch):
            state = trainer.averager.model().state_dict()
            self.averaged[trainer.epoch] = {k: v.detach().clone() for k, v in state.items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(AVERAGES))
def test_sigkill_then_resume_ends_bit_identical(runs_dir, tmp_path, method):
    cfg = {**IRIS, "train": {**IRIS["train"], "average": AVERAGES[method]}}
    train_and_kill(cfg, tmp_path, 5)  # the checkpoint of epoch 4 exists
    killed = runs_dir / "killed"
    assert load_checkpoint(killed / "checkpoints")["epoch"] == 4
    resumed = trainwell.fit(resume=killed, quiet=True)
    keep = KeepAveraged()
    full = trainwell.fit(cfg, name="full", quiet=True, callbacks=[keep])
    assert epoch_records(killed) == epoch_records(full.run_dir)
    assert resumed.results["test"] == full.results["test"]
    a, b = (load_checkpoint(r / "checkpoints") for r in (killed, full.run_dir))
    assert a["average"]["count"] == b["average"]["count"] == (
        6 * full.trainer.steps_per_epoch if method == "ema" else 4
    )
    for part in ("model", "best"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in b[part])
    assert all(torch.equal(a["average"]["weights"][k], v) for k, v in
               b["average"]["weights"].items())
    # model.safetensors holds the averaged weights of the best epoch, not the raw ones
    best = full.results["best_epoch"]
    assert best >= (1 if method == "ema" else 3)
    saved = read_safetensors(full.run_dir / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in keep.averaged[best].items())
    assert any(not torch.equal(saved[k], b["model"][k]) for k in saved)
    assert full.results["average"]["count"] == b["average"]["count"]


def test_trainwell_train_swa_on_a_cnn_with_batch_norm(runs_dir, tmp_path, capsys):
    cfg = tmp_path / "swa.toml"
    cfg.write_text(textwrap.dedent("""
        [data]
        source = "builtin:digits_images"
        preprocess = []
        [model]
        arch = "cnn"
        channels = [8]
        hidden = [16]
        norm = "batch"
        [train]
        epochs = 4
        batch_size = 64
        optimizer = { name = "adam", lr = 0.01 }
        average = "swa"
        [train.early_stopping]
        patience = 2
    """))
    # one epoch: one set of weights, nothing to average
    assert main(["train", str(cfg), "--quiet", "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "averages 1 set of weights; it needs at least 2" in err
    assert main(["train", str(cfg), "--quiet", "--set", "train.average.start=9"]) == 2
    assert "train.average.start: 9 (epoch 9) is beyond train.epochs 4" in capsys.readouterr().err
    assert not any(runs_dir.iterdir())  # nothing written
    assert main(["train", str(cfg), "--quiet", "--name", "swa",
                 "--set", "train.average.start=0.5"]) == 0
    run = runs_dir / "swa"
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] >= 3  # SWA averages epochs 3 and 4; only those are kept
    assert results["average"] == {"name": "swa", "count": 2, "start": 3, "every": 1, "lr": None}
    ckpt = load_checkpoint(run / "checkpoints")
    assert ckpt["average"]["count"] == 2
    saved = read_safetensors(run / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in ckpt["best"].items())
    norms = [k for k in saved if k.endswith("running_mean")]
    assert norms and all(not torch.equal(saved[k], ckpt["model"][k]) for k in norms)
    # the kept model is the one the results describe
    predictions = np.load(run / "predictions.npz")
    accuracy = float((predictions["y_pred"] == predictions["y_true"]).mean())
    assert accuracy == pytest.approx(results["test"]["test_accuracy"])
    predictor = trainwell.load(run)
    assert predictor.model.state_dict().keys() == saved.keys()

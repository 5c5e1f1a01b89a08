"""The shipped checkpoint ``pretrained:mnist04``: its sidecar, its weights, and a transfer to
digits it never saw."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch

import trainwell
from trainwell.after import list_pretrained, load_matching_
from trainwell.after.pretrain import AUGMENT, MODEL, TRAIN, mnist_rows
from trainwell.config import load_config
from trainwell.nn import build_model

FOLDER = resources.files("trainwell.after") / "pretrained"


def test_the_sidecar_names_what_made_the_file():
    assert "mnist04" in list_pretrained()
    weights = FOLDER / "mnist04.safetensors"
    assert len(weights.read_bytes()) < 1_000_000
    side = json.loads((FOLDER / "mnist04.json").read_text())
    assert side["model"] == MODEL
    assert side["input_shape"] == [1, 28, 28] and side["classes"] == [0, 1, 2, 3, 4]
    assert side["task"] == "multiclass" and side["preprocess"] == []
    assert side["command"].startswith("python -m trainwell.after.pretrain")
    assert "the fixed test split unused" in side["data"]
    assert side["augment"] == AUGMENT and side["train"] == TRAIN  # what the script trains with


def test_it_recognizes_the_test_digits_0_to_4_it_never_saw():
    """All tensors load into the sidecar's architecture, head included, and the model is the
    trained one: most held-out test images of its own classes are right."""
    X, y, test = mnist_rows()
    model = build_model(load_config({"model": MODEL}).model, (1, 28, 28), 5, "multiclass")
    report = load_matching_(model, "pretrained:mnist04")
    assert report.new == [] and report.skipped == {}
    rows = test & (y < 5)
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(X[rows])).argmax(1).numpy()
    assert (pred == y[rows]).mean() > 0.95


def test_it_transfers_to_digits_5_to_9_well_above_chance(tmp_path, runs_dir):
    X, y, test = mnist_rows()
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.choice(np.flatnonzero(~test & (y == c)), 5, replace=False)
                            for c in range(5, 10)])
    held = np.concatenate([np.flatnonzero(test & (y == c))[:60] for c in range(5, 10)])
    rows = np.concatenate([train, held])
    np.savez(tmp_path / "digits59.npz", X=X[rows], y=y[rows])
    (tmp_path / "split.json").write_text(json.dumps(
        {"train": list(range(len(train))), "test": list(range(len(train), len(rows)))}))
    data = {"source": f"npz:{tmp_path / 'digits59.npz'}", "preprocess": [],
            "split": {"indices": str(tmp_path / "split.json")}}
    run = trainwell.fit({"data": data, "model": MODEL, "log": {"report": False},
                         "train": {"epochs": 40, "optimizer": {"name": "adam", "lr": 0.01}}},
                        init_from="pretrained:mnist04", name="probe", quiet=True)
    assert run.results["transfer"]["mode"] == "finetune"
    assert run.metrics["test_accuracy"] > 0.6  # 5 classes: chance is 0.2
    assert json.loads((run.run_dir / "transfer.json").read_text())["notes"] == []


@pytest.mark.slow
def test_the_pretraining_script_runs(tmp_path):
    """A short run of the script on shuffled labels writes both files."""
    from trainwell.after.pretrain import main

    assert main(["--out", str(tmp_path), "--name", "tiny", "--epochs", "1",
                 "--shuffle-labels"]) == 0
    side = json.loads((tmp_path / "tiny.json").read_text())
    assert side["command"] == ("python -m trainwell.after.pretrain --seed 0 --name tiny "
                               "--epochs 1 --shuffle-labels")
    assert "labels shuffled" in side["data"]
    assert load_matching_(build_model(load_config({"model": MODEL}).model, (1, 28, 28), 5,
                                      "multiclass"), tmp_path / "tiny.safetensors").new == []

"""``[model] init_from`` in a run: the plan, its files, freezing through the trainer, exact resume,
``auto``'s table, the doctor's negative-transfer check, and each bad input refused whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import trainwell
from trainwell.after import transfer
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.runs import read_safetensors

MODEL = {"arch": "cnn", "channels": [6, 12], "hidden": [16], "norm": "batch"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """8x8 digits: 0-4 as the source set, 5-9 as the target set (npz files)."""
    folder = tmp_path_factory.mktemp("digits")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    np.savez(folder / "source.npz", X=X[y < 5], y=y[y < 5])
    some = np.concatenate([np.flatnonzero(y == c)[:50] for c in range(5, 10)])
    np.savez(folder / "target.npz", X=X[some], y=y[some])
    few = np.concatenate([np.flatnonzero(y == c)[:6] for c in range(5, 10)])
    np.savez(folder / "few.npz", X=X[few], y=y[few])
    np.savez(folder / "big.npz", X=np.zeros((20, 1, 12, 12), np.float32), y=np.arange(20) % 5)
    return folder


@pytest.fixture(scope="module")
def source_run(digits, tmp_path_factory):
    runs = tmp_path_factory.mktemp("source-runs")
    return trainwell.fit({"data": {"source": f"npz:{digits / 'source.npz'}"}, "model": MODEL,
                          "train": {"epochs": 4}, "runs_dir": str(runs),
                          "log": {"report": False}},
                         name="source", quiet=True).run_dir


def target(digits, runs_dir, **model):
    return {"data": {"source": f"npz:{digits / 'target.npz'}"}, "runs_dir": str(runs_dir),
            "model": {**MODEL, **model}, "log": {"report": False},
            "train": {"epochs": 3, "optimizer": {"name": "adam", "lr": 0.01}}}


class Record:
    """conv1's weight and conv1_norm's running mean at the end of every epoch."""

    def __init__(self):
        self.weights, self.means = [], []

    def after_epoch(self, trainer):
        self.weights.append(trainer.model.conv1.weight.detach().clone())
        self.means.append(trainer.model.conv1_norm.running_mean.clone())


def test_probe_keeps_the_backbone_bit_for_bit_and_writes_its_plan(digits, source_run, runs_dir,
                                                                    capsys):
    src = read_safetensors(source_run / "model.safetensors")
    rec = Record()
    run = trainwell.fit(target(digits, runs_dir, transfer="probe"), init_from=source_run,
                        name="probe", quiet=True, callbacks=[rec])
    out = capsys.readouterr().out
    assert f"transfer from {source_run}: 18 tensors loaded, 2 new, 2 skipped" in out
    assert "loaded: conv1, conv1_norm, conv2, conv2_norm, fc1, fc1_norm" in out
    assert "transfer mode: linear probe (backbone frozen)" in out
    final = read_safetensors(run.run_dir / "model.safetensors")
    for name, tensor in src.items():
        if not name.startswith("head."):
            assert torch.equal(final[name], tensor), name
    assert all(torch.equal(w, src["conv1.weight"]) for w in rec.weights)
    assert all(torch.equal(m, src["conv1_norm.running_mean"]) for m in rec.means)
    assert not torch.equal(final["head.weight"][:5], src["head.weight"][:5])
    plan = json.loads((run.run_dir / "transfer.json").read_text())
    assert plan["mode"] == "probe" and plan["probe_epochs"] == 3
    assert plan["report"]["new"] == ["head.weight", "head.bias"]
    assert run.results["transfer"]["mode"] == "probe"
    assert run.metrics["test_accuracy"] > 0.5  # 5 classes: chance is 0.2


def test_probe_then_finetune_unfreezes_after_its_share_with_lr_mult(digits, source_run,
                                                                    runs_dir):
    rec = Record()
    cfg = target(digits, runs_dir, transfer="probe_then_finetune", lr_mult=0.25,
                 init_from=str(source_run))
    cfg["train"]["epochs"] = 4
    run = trainwell.fit(cfg, name="ptf", quiet=True, callbacks=[rec])
    src = read_safetensors(source_run / "model.safetensors")
    assert [torch.equal(w, src["conv1.weight"]) for w in rec.weights] == [
        True, True, False, False]
    lrs = [g["initial_lr"] for g in run.trainer.optimizer.param_groups]
    assert lrs == [pytest.approx(1e-2), pytest.approx(2.5e-3)]


def test_probe_then_finetune_in_one_epoch_is_a_probe_and_says_so(digits, source_run, runs_dir,
                                                                  capsys):
    cfg = target(digits, runs_dir, transfer="probe_then_finetune", init_from=str(source_run))
    cfg["train"]["epochs"] = 1
    run = trainwell.fit(cfg, name="ptf1", quiet=True)
    out = capsys.readouterr().out
    assert "transfer mode: linear probe (backbone frozen)" in out
    assert "train.epochs = 1 leaves no epoch to fine-tune after the probe" in out
    plan = json.loads((run.run_dir / "transfer.json").read_text())
    assert (plan["requested"], plan["mode"], plan["probe_epochs"]) == (
        "probe_then_finetune", "probe", 1)


def test_a_resumed_transfer_run_ends_bit_identical(digits, source_run, runs_dir):
    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 2:
                raise RuntimeError("the machine went down")

    import shutil

    copy = shutil.copytree(source_run, runs_dir.parent / "source-copy")
    cfg = target(digits, runs_dir, transfer="probe_then_finetune", lr_mult=0.5,
                 init_from=str(copy))
    cfg["train"].update(epochs=4, checkpoint_every=1)
    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(cfg, name="crashed", quiet=True, callbacks=[Crash()])
    shutil.rmtree(copy)  # the checkpoint holds the weights: the source is not read again
    resumed = trainwell.fit(resume=runs_dir / "crashed", quiet=True)
    shutil.copytree(source_run, copy)
    full = trainwell.fit(cfg, name="full", quiet=True)
    a = read_safetensors(resumed.run_dir / "model.safetensors")
    b = read_safetensors(full.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("rows", "probe", "scratch", "choice"), [
    (5, 0.9, 0.6, "probe"), (50, 0.9, 0.6, "probe_then_finetune"),
    (5, 0.55, 0.6, "scratch"), (50, 0.5, 0.6, "finetune"), (5, 0.6, 0.6, "probe")])
def test_auto_applies_lecture_002s_table(monkeypatch, rows, probe, scratch, choice):
    import trainwell.diagnose.transfer_check as tc

    monkeypatch.setattr(tc, "probe_scores", lambda models, X, y, seed: {
        "pretrained": probe, "scratch": scratch, "folds": 5, "rows": 5 * rows})

    class Split:
        X = torch.zeros(5 * rows, 2)
        y = torch.arange(5 * rows) % 5

    class Prepared:
        task, train = "multiclass", Split()

    mode, info = transfer._auto(torch.nn.Linear(2, 5), torch.nn.Linear(2, 5), Prepared(), 20, 0)
    assert mode == choice == info["choice"]
    assert f"{rows} labelled training rows per class" in info["reason"]
    assert "Lecture 002's table:" in info["reason"]


@pytest.mark.parametrize(("threshold", "choice"), [(20, "probe_then_finetune"),
                                                   (1, "probe_then_finetune")])
def test_auto_with_one_row_per_class_hedges_between_the_cells(threshold, choice):
    """One labelled row of a class leaves nothing to hold out: the real probe measurement
    returns no accuracies, the cell's similarity is "unknown", and the run probes first, then
    fine-tunes."""
    torch.manual_seed(0)

    class Split:
        X = torch.randn(5, 3)
        y = torch.arange(5)

    class Prepared:
        task, train = "multiclass", Split()

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 5))
    mode, info = transfer._auto(net, net, Prepared(), threshold, 0)
    assert mode == choice == info["choice"]
    assert info["probe_accuracy"] is None and info["cell"]["similarity"] == "unknown"
    assert info["cell"]["data"] == ("very little" if threshold > 1 else "quite a lot")
    assert "similarity not measured" in info["reason"]
    assert "similarity unknown" in info["reason"] if threshold > 1 else (
        "fine-tune a few layers" in info["reason"])


def test_auto_on_a_tiny_case_says_which_cell_and_why(digits, source_run, runs_dir, capsys):
    cfg = target(digits, runs_dir, transfer="auto", init_from=str(source_run))
    cfg["data"]["source"] = f"npz:{digits / 'few.npz'}"
    cfg["data"]["split"] = {"val": 0.0, "test": 0.0}
    cfg["data"]["preprocess"] = []  # the source standardized its images: a note says so
    run = trainwell.fit(cfg, name="auto", quiet=True)
    auto = json.loads((run.run_dir / "transfer.json").read_text())["auto"]
    assert auto["rows_per_class"] == 6 and auto["cell"]["data"] == "very little"
    assert auto["choice"] == run.results["transfer"]["mode"]
    assert auto["cell"]["similarity"] == (
        "very similar" if auto["choice"] == "probe" else "very different")
    assert auto["probe_accuracy"] is not None and auto["folds"] == 5
    out = capsys.readouterr().out
    assert "transfer auto: 6 labelled training rows per class (under " in out
    note = (f"note: {source_run} learned from inputs preprocessed with the default steps "
            "(standardize for tables, channel_mean_std for images); this run's data.preprocess "
            "is [] (none): remove data.preprocess (the default steps) to feed it inputs like "
            "those it learned from")
    assert note in out
    assert json.loads((run.run_dir / "transfer.json").read_text())["notes"] == [note[6:]]


def test_doctor_warns_of_negative_transfer(digits, tmp_path, runs_dir):
    """A source trained on shuffled labels teaches nothing: the probe on its features loses to
    the probe on random features; a source trained on real digits wins."""
    from trainwell.diagnose.from_config import doctor_from_config

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    keep = np.concatenate([np.flatnonzero(y == c)[:60] for c in range(5)])
    shuffled = np.random.default_rng(0).permutation(y[keep])
    np.savez(tmp_path / "noise.npz", X=X[keep], y=shuffled)
    bad = trainwell.fit({"data": {"source": f"npz:{tmp_path / 'noise.npz'}",
                                  "split": {"val": 0.0, "test": 0.0}},
                         "model": {**MODEL, "hidden": [8]},
                         "train": {"epochs": 60, "optimizer": {"name": "adam", "lr": 0.01}},
                         "runs_dir": str(runs_dir), "log": {"report": False}},
                        name="noise", quiet=True).run_dir
    found = {}
    for name, source in (("bad", bad),):
        cfg = load_config({"data": {"source": f"npz:{digits / 'target.npz'}"},
                           "model": {**MODEL, "hidden": [8], "init_from": str(source)},
                           "doctor": {"checks": ["transfer"]}})
        report = doctor_from_config(cfg, **transfer.doctor_inputs(cfg))
        (found[name],) = [f for f in report.findings if f.check == "transfer.negative"]
    assert found["bad"].status == "warn"
    assert "pretrained features do" in found["bad"].title
    ev = found["bad"].evidence
    assert ev["pretrained"] < ev["scratch"] + 0.02


def test_the_doctor_passes_a_source_that_helps(digits, source_run):
    from trainwell.diagnose.from_config import doctor_from_config

    cfg = load_config({"data": {"source": f"npz:{digits / 'target.npz'}"},
                       "model": {**MODEL, "init_from": str(source_run)},
                       "doctor": {"checks": ["transfer"]}})
    report = doctor_from_config(cfg, **transfer.doctor_inputs(cfg))
    (finding,) = [f for f in report.findings if f.check == "transfer.negative"]
    assert finding.status == "pass" and finding.title.startswith("the pretrained features help")


def test_transfer_fields_need_init_from_and_agree():
    with pytest.raises(ConfigError, match=r"model.transfer: 'probe' needs model.init_from"):
        load_config({"model": {"transfer": "probe"}})
    with pytest.raises(ConfigError, match=r"model.freeze: 'conv1' applies to transfer = "
                                          r"'finetune'; transfer = 'probe' freezes"):
        load_config({"model": {"init_from": "x", "transfer": "probe", "freeze": "conv1"}})
    with pytest.raises(ConfigError, match="model.lr_mult"):
        load_config({"model": {"init_from": "x", "lr_mult": 0}})


def _refused(cfg, tmp_path, runs_dir, capsys, *pieces):
    import tomli_w

    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(cfg))
    assert main(["train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    for piece in pieces:
        assert piece in err[0], err[0]
    assert list(runs_dir.iterdir()) == []  # nothing half-written
    return err[0]


def test_bad_sources_are_refused_before_any_run_directory(digits, source_run, tmp_path,
                                                          runs_dir, capsys):
    base = target(digits, runs_dir)
    missing = {**base, "model": {**MODEL, "init_from": "runs/gone"}}
    _refused(missing, tmp_path, runs_dir, capsys, "runs/gone does not exist")
    keep = {**base, "model": {**MODEL, "init_from": str(source_run), "head": "keep"}}
    _refused(keep, tmp_path, runs_dir, capsys, "model.head = 'keep' keeps the last layer of",
             "classes [0, 1, 2, 3, 4]", "classes [5, 6, 7, 8, 9]", 'use head = "new"')
    shape = {**keep, "data": {"source": f"npz:{digits / 'big.npz'}",
                              "split": {"val": 0.0, "test": 0.0}}}
    _refused(shape, tmp_path, runs_dir, capsys, "was trained on inputs of shape (1, 8, 8); this "
             "data's are (1, 12, 12)")
    from trainwell.runs import write_safetensors_atomic

    write_safetensors_atomic(tmp_path / "other.safetensors", {"conv1.weight": torch.zeros(
        3, 1, 5, 5), "conv1.bias": torch.zeros(3)})
    other = {**base, "model": {**MODEL, "init_from": str(tmp_path / "other.safetensors")}}
    _refused(other, tmp_path, runs_dir, capsys, "fits the model: its 'conv1.weight' has shape "
             "(3, 1, 5, 5) where the model's is (6, 1, 3, 3)")
    torch.save({"conv1.weight": torch.zeros(6, 1, 3, 3), "net": torch.nn.Linear(2, 2)},
               tmp_path / "model.pt")
    pickled = {**base, "model": {**MODEL, "init_from": str(tmp_path / "model.pt")}}
    _refused(pickled, tmp_path, runs_dir, capsys, "holds Python objects beyond tensors")
    layer = {**base, "model": {**MODEL, "init_from": str(source_run), "freeze": "conv3"}}
    _refused(layer, tmp_path, runs_dir, capsys, "model.freeze = 'conv3' names no layer",
             "conv1, conv1_norm, conv2, conv2_norm, fc1, fc1_norm, head")
    everything = {**base, "model": {**MODEL, "init_from": str(source_run), "freeze": "head"}}
    _refused(everything, tmp_path, runs_dir, capsys, "model.freeze = 'head' freezes every layer "
             "of the model: nothing would train")
    heads = {**base, "model": {**MODEL, "init_from": str(source_run)},
             "domain": {"target": "builtin:rotated_moons"}}
    _refused(heads, tmp_path, runs_dir, capsys, "model.init_from applies to a model of one head")

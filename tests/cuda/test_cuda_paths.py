"""The CUDA code paths on a GPU: training in fp32, bf16 and fp16, exact resume, data-parallel
training over NCCL, the scikit-learn estimator, weight averaging, test-time averaging and the
Bayes sampler under a CUDA default device.

Each test checks what the run computed (accuracy, dtypes, devices, bit-identical weights), not
only that it ran. The module is skipped as a whole where torch sees no CUDA device;
``scripts/gpu-check.sh`` runs it on a GPU machine.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812 - torch's own spelling
from killing import epoch_records, train_and_kill
from safetensors.torch import load_file
from sklearn.datasets import load_digits, make_regression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import update_bn

import trainwell
from trainwell.data.augment.tta import IDENTITY, View
from trainwell.search.bayes import BayesSampler
from trainwell.train import Callback, Trainer
from trainwell.train import device as device_mod
from trainwell.train import trainer as trainer_mod
from trainwell.train.checkpoint import load_checkpoint
from trainwell.train.test_time import TestTimeAverage, average_outputs, averaged_metrics
from trainwell.tune.estimator import NetClassifier, NetRegressor

if not torch.cuda.is_available():
    pytest.skip("no CUDA device: these tests run on a GPU machine", allow_module_level=True)

# cuBLAS picks its workspace once, at the process's first matmul; deterministic algorithms need
# it fixed, and a child process (the killed run) must compute with the same one
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

CUDA = torch.device("cuda")


# ---------------------------------------------------------------------------- helpers


def digits_split():
    """The digits as 64 standardized features, a stratified 80/20 split (CPU tensors); a pixel
    constant in the training rows is only centered."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = Xtr.mean(0), Xtr.std(0)
    std[std == 0] = 1.0

    def t(a):
        return torch.tensor((a - mean) / std, dtype=torch.float32)

    return (t(Xtr), torch.tensor(ytr)), (t(Xte), torch.tensor(yte))


def digit_images():
    """The same split as 1x8x8 images scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)

    def t(a):
        return torch.tensor(a / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)

    return (t(Xtr), torch.tensor(ytr)), (t(Xte), torch.tensor(yte))


def mlp(dropout: float = 0.0, batch_norm: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(64, 64)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(64))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def cnn(dropout: float = 0.3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(8 * 8 * 8, 10),
    )


def fit(model: nn.Module, train, val, resume=None, **kw) -> Trainer:
    """A Trainer on the GPU (Adam 3e-3, batches of 64, seed 0; ``kw`` overrides) fitted on
    ``train``, validated on ``val``."""
    settings = {
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "lr": 3e-3},
        "epochs": 10,
        "batch_size": 64,
        "seed": 0,
        "device": "cuda",
        "threads": None,
        **kw,
    }
    return Trainer(model, **settings).fit(train, val, resume=resume)


def strip_times(history):
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in history]


class Watch(Callback):
    """What the training steps computed with: the outputs' dtypes and devices; whether every
    step's loss was finite."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()
        self.devices: set[str] = set()
        self.finite = True

    def after_loss(self, trainer):
        self.dtypes.add(trainer.output.dtype)
        self.devices.add(trainer.output.device.type)
        self.finite = self.finite and bool(torch.isfinite(trainer.loss))


class CountedScaler:
    """A fit's gradient scaler, counting the optimizer steps taken through it."""

    def __init__(self, inner) -> None:
        self.inner, self.steps = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def step(self, optimizer):
        self.steps += 1
        return self.inner.step(optimizer)


@pytest.fixture
def scalers(monkeypatch):
    """The gradient scaler of each fit in the test, in order (the trainer keeps it inside
    ``fit``, so it is caught where the trainer gets it)."""
    made: list[CountedScaler] = []

    def spy(device, precision):
        ctx, scaler, used = device_mod.autocast_context(device, precision)
        made.append(CountedScaler(scaler))
        return ctx, made[-1], used

    monkeypatch.setattr(trainer_mod, "autocast_context", spy)
    return made


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms (cuDNN and cuBLAS included) for the test; the previous
    setting afterwards."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


class Kill(Callback):
    """Interrupts the fit at the end of ``epoch`` (as Ctrl-C would)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------- fp32


def test_fp32_on_cuda_trains_on_the_gpu_and_learns_the_digits(tmp_path):
    train, test = digits_split()
    watch = Watch()
    t = fit(mlp(), train, test, callbacks=[watch], checkpoint_dir=tmp_path)
    assert t.device == CUDA and t.precision_used == "fp32"
    assert {p.device.type for p in t.model.parameters()} == {"cuda"}
    assert watch.devices == {"cuda"} and watch.dtypes == {torch.float32} and watch.finite
    losses = [r["train_loss"] for r in t.history]
    assert losses[-1] < losses[0] / 4
    assert t.history[-1]["val_accuracy"] > 0.94
    assert t.state_dict()["environment"]["device"] == "cuda"
    # the checkpoint holds CPU tensors; the kept weights predict on the CPU as on the GPU
    saved = load_checkpoint(tmp_path)
    assert {v.device.type for v in saved["best"].values()} == {"cpu"}
    on_cpu = mlp()
    on_cpu.load_state_dict(saved["best"])
    out, _ = t.predict_outputs(test)
    assert out.device.type == "cuda"
    with torch.no_grad():
        torch.testing.assert_close(out.cpu(), on_cpu.eval()(test[0]), rtol=1e-4, atol=1e-4)
    assert float((out.argmax(1).cpu() == test[1]).double().mean()) > 0.94


# ---------------------------------------------------------------------------- bf16 and fp16


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_bf16_and_fp16_on_cuda_autocast_keep_fp32_weights_and_learn(precision, scalers, tmp_path):
    train, test = digits_split()
    watch = Watch()
    t = fit(mlp(), train, test, precision=precision, callbacks=[watch], checkpoint_dir=tmp_path)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert t.precision_used == precision  # what ran, as results.json reports it
    assert watch.dtypes == {half} and watch.devices == {"cuda"} and watch.finite
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in t.history)
    assert t.history[-1]["val_accuracy"] > 0.93
    (scaler,) = scalers
    assert scaler.steps == t.step > 0  # every optimizer step went through the scaler
    if precision == "fp16":  # fp16 scales the loss (a GradScaler); bf16 needs no scaling
        assert isinstance(scaler.inner, torch.amp.GradScaler) and scaler.inner.is_enabled()
        assert 0 < scaler.inner.get_scale() <= 2.0**16
    else:
        assert not isinstance(scaler.inner, torch.amp.GradScaler)
    # weights, optimizer moments and the checkpoint stay fp32
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    saved = load_file(str(tmp_path / "last.safetensors"))
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}


def test_an_fp16_run_resumed_on_cuda_continues_its_loss_scale(scalers, tmp_path, deterministic):
    """fp16 loss scaling is training state: a scaler that starts afresh at 2**16 on resume skips
    again the steps whose gradients overflow that scale, so an fp16 run resumes bit for bit
    only when the checkpoint carries the scaler's scale and growth count. The loss is
    multiplied by 1000, so that the first steps' fp16 gradients overflow 2**16 (as those of
    many real fp16 runs do) and the scale backs off within the test."""
    train, test = digits_split()

    def loss(out, y):
        return 1000.0 * F.cross_entropy(out, y)

    kw = {"precision": "fp16", "loss": loss, "epochs": 4, "schedule": "cosine"}
    full = fit(mlp(dropout=0.2), train, test, **kw)
    assert scalers[0].inner.get_scale() < 2.0**16  # the premise: the scale backed off
    with pytest.raises(KeyboardInterrupt):
        fit(
            mlp(dropout=0.2),
            train,
            test,
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
            callbacks=[Kill(3)],
            **kw,
        )
    resumed = fit(mlp(dropout=0.2, seed=99), train, test, resume=tmp_path, **kw)
    assert strip_times(resumed.history) == strip_times(full.history)
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


# ---------------------------------------------------------------------------- exact resume

#: a small CNN with dropout, trained with augmentation: dropout draws from the CUDA generator,
#: the augmentations run on the GPU
RESUME = {
    "seed": 3,
    "data": {"source": "builtin:digits_images", "split": {"val": 0.2, "test": 0.2}},
    "model": {"arch": "cnn", "channels": [8], "hidden": [32], "dropout": 0.2},
    "train": {"epochs": 3, "batch_size": 128, "checkpoint_every": 1, "device": "cuda"},
    "doctor": {"monitor": False},
    "log": {"report": False},
    "augment": {
        "hflip": {},
        "crop": {"padding": 1},
        "affine": {"rotate": 10},
        "cutout": {"size": 3},
        "mixup": {"alpha": 0.4},
        "cutmix": {"p": 0.5},
    },
}

def test_a_run_killed_on_cuda_resumes_bit_identical(runs_dir, tmp_path, deterministic):
    train_and_kill(RESUME, tmp_path, 2, deterministic=True)
    killed = runs_dir / "killed"
    assert len(epoch_records(killed)) == 2
    state = load_checkpoint(killed / "checkpoints")
    assert state["epoch"] == 1 and "cuda" in state["rng"]  # the CUDA generator is saved
    resumed = trainwell.fit(resume=killed, quiet=True)  # in this process: a fresh CUDA state
    assert resumed.status == "completed" and resumed.history[0]["epoch"] == 1
    full = trainwell.fit(RESUME, name="full", quiet=True)
    assert any(isinstance(m, nn.Dropout) and m.p > 0 for m in full.model.modules())
    assert next(full.model.parameters()).device.type == "cuda"
    assert epoch_records(killed) == epoch_records(full.run_dir)
    assert resumed.results["test"] == full.results["test"]
    a, b = load_file(killed / "model.safetensors"), load_file(full.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- DDP over NCCL


def _ddp_config(runs: Path) -> dict:
    """tests/train/test_distributed.py's run, on the GPU, with BatchNorm."""
    return {
        "seed": 0,
        "runs_dir": str(runs),
        "data": {
            "source": "builtin:digits",
            "preprocess": ["standardize"],
            "split": {"val": 0.15, "test": 0.15, "stratify": True},
        },
        "model": {"arch": "mlp", "hidden": [32], "norm": "batch"},
        "train": {
            "epochs": 3,
            "batch_size": 50,
            "optimizer": {"name": "adam", "lr": 0.01},
            "checkpoint_every": 1,
            "device": "cuda",
        },
        "log": {"report": False},
    }


def test_ddp_over_nccl_on_one_gpu_syncs_batch_norm_and_equals_one_process(runs_dir, tmp_path):
    """A caller's NCCL group of one: the run trains through DistributedDataParallel with its
    BatchNorm layers converted to SyncBatchNorm, leaves the group initialized, and equals the
    run without a group (as on the CPU with gloo): the same weights, metrics and test results;
    the training loss, summed across ranks in another order, to rounding."""
    cfg = _ddp_config(runs_dir)
    plain = trainwell.fit(cfg, name="plain", quiet=True)
    assert plain.trainer.distributed is None
    assert any(type(m) is nn.BatchNorm1d for m in plain.model.modules())
    torch.cuda.set_device(0)
    store = dist.FileStore(str(tmp_path / "nccl-store"), 1)
    dist.init_process_group(
        "nccl", store=store, rank=0, world_size=1, device_id=torch.device("cuda", 0)
    )
    try:
        assert dist.get_backend() == "nccl"
        run = trainwell.fit(cfg, name="grouped", quiet=True)
        assert dist.is_initialized()  # the caller's group is left as it was
    finally:
        dist.destroy_process_group()
    trainer = run.trainer
    assert trainer.distributed is not None
    assert isinstance(trainer.distributed.ddp, DistributedDataParallel)
    norms = [m for m in trainer.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert {p.device for p in trainer.model.parameters()} == {torch.device("cuda", 0)}
    assert run.status == "completed" and run.results["test"]["test_accuracy"] > 0.9
    assert run.results["test"] == plain.results["test"]
    a = load_file(run.run_dir / "model.safetensors")
    b = load_file(plain.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    grouped, alone = epoch_records(run.run_dir), epoch_records(plain.run_dir)
    assert len(grouped) == len(alone) == 3
    for g, p in zip(grouped, alone, strict=True):
        assert g.keys() == p.keys()
        assert g["train_loss"] == pytest.approx(p["train_loss"], rel=1e-12)
        assert {k: v for k, v in g.items() if k != "train_loss"} == {
            k: v for k, v in p.items() if k != "train_loss"
        }
    ckpt = load_checkpoint(run.run_dir / "checkpoints")
    assert ckpt["callbacks"]["distributed"]["world_size"] == 1


# ---------------------------------------------------------------------------- the estimator


def test_the_estimators_on_cuda_fit_and_predict_numpy_arrays():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    labels = np.array([f"digit {k}" for k in range(10)])  # the labels come back as given
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    clf = make_pipeline(
        StandardScaler(),
        NetClassifier(hidden=(64,), lr=3e-3, epochs=15, device="cuda", random_state=0),
    ).fit(Xtr, labels[ytr])
    net = clf[-1]
    assert net.device_.type == "cuda"
    assert {p.device.type for p in net.model_.parameters()} == {"cuda"}
    # the fit seeds its own draws and leaves the caller's generators as they were
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    proba = clf.predict_proba(Xte)
    assert type(proba) is np.ndarray and proba.dtype == np.float64 and proba.shape == (450, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    pred = clf.predict(Xte)
    assert type(pred) is np.ndarray and pred.shape == (450,) and set(pred) <= set(labels)
    assert clf.score(Xte, labels[yte]) > 0.93
    Xr, yr = make_regression(n_samples=400, n_features=8, noise=5.0, random_state=0)
    yr = (yr - yr.mean()) / yr.std()
    reg = NetRegressor(hidden=(32,), lr=1e-2, epochs=40, device="cuda", random_state=0)
    out = reg.fit(Xr[:300], yr[:300]).predict(Xr[300:])
    assert type(out) is np.ndarray and out.dtype == np.float64 and out.shape == (100,)
    assert reg.score(Xr[300:], yr[300:]) > 0.9


# ---------------------------------------------------------------------------- averaging


class Record:
    """Copies of the model's state after every optimizer step and at every epoch's end."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.epochs: dict[int, dict[str, torch.Tensor]] = {}

    def after_step(self, trainer):
        self.steps.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    def after_epoch(self, trainer):
        state = trainer.model.state_dict()
        self.epochs[trainer.epoch] = {k: v.detach().clone() for k, v in state.items()}


def test_ema_and_swa_on_cuda_average_as_by_hand():
    train, test = digits_split()
    rec = Record()
    ema = fit(
        mlp(batch_norm=True),
        train,
        test,
        epochs=3,
        callbacks=[rec],
        average={"name": "ema", "decay": 0.9},
    )
    assert ema.averager.count == len(rec.steps) == ema.step
    averaged = ema.averager.module.state_dict()
    assert {v.device.type for v in averaged.values()} == {"cuda"}
    # the first update copies, each later one is decay * avg + (1 - decay) * w; BatchNorm's
    # running statistics are averaged the same way
    floats = [k for k, v in averaged.items() if v.is_floating_point()]
    assert "1.running_mean" in floats
    for key in floats:
        hand = rec.steps[0][key].double()
        for state in rec.steps[1:]:
            hand = 0.9 * hand + 0.1 * state[key].double()
        torch.testing.assert_close(averaged[key].double(), hand, rtol=1e-4, atol=1e-5)
    assert ema.history[-1]["val_accuracy"] > 0.93
    # SWA: the mean of the last two epochs' weights, its BatchNorm statistics recomputed on
    # the training data in order (update_bn), on the GPU
    rec = Record()
    swa = fit(
        mlp(batch_norm=True),
        train,
        test,
        epochs=4,
        callbacks=[rec],
        average={"name": "swa", "start": 3},
    )
    assert swa.averager.count == 2 and swa.best_epoch >= 3
    kept = swa.averager.model().state_dict()
    hand_net = mlp(batch_norm=True).to(CUDA)
    params = {k: (rec.epochs[3][k] + rec.epochs[4][k]) / 2 for k, _ in hand_net.named_parameters()}
    hand_net.load_state_dict({**hand_net.state_dict(), **params})
    X = train[0].to(CUDA)
    update_bn([(X[i : i + 64],) for i in range(0, len(X), 64)], hand_net)
    for key in ("1.running_mean", "1.running_var"):
        assert kept[key].device.type == "cuda"
        torch.testing.assert_close(kept[key], hand_net.state_dict()[key], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(kept["1.running_mean"], rec.epochs[4]["1.running_mean"])
    assert swa.history[-1]["val_accuracy"] > 0.93


# ---------------------------------------------------------------------------- test-time averaging


def test_test_time_averaging_on_cuda(deterministic):
    train, test = digit_images()
    t = fit(cnn(), train, test, epochs=8)
    assert t.history[-1]["val_accuracy"] > 0.9
    net = t.model.eval()
    X = test[0].to(CUDA)
    # views: the mean of the views' probabilities
    views = [IDENTITY, View(hflip=True), View(dx=1), View(dy=-1)]
    mean, spread = TestTimeAverage(net, "multiclass", views).average(X)
    with torch.no_grad():
        by_hand = sum(torch.softmax(net(v(X)), 1) for v in views) / len(views)
    assert mean.device.type == "cuda" and spread is None
    torch.testing.assert_close(mean, by_hand, rtol=1e-5, atol=1e-6)
    # the identity alone predicts as the plain model, bit for bit
    plain, _ = average_outputs(TestTimeAverage(net, "multiclass"), test[0])
    with torch.inference_mode():
        assert torch.equal(plain, net(X))
    # Monte Carlo dropout on the GPU's generator: seeded, and the caller's generator untouched
    mc = TestTimeAverage(net, "multiclass", mc_samples=8)
    before = torch.cuda.get_rng_state()
    out1, spread1 = average_outputs(mc, test[0], seed=3)
    assert torch.equal(torch.cuda.get_rng_state(), before)
    out2, spread2 = average_outputs(mc, test[0], seed=3)
    out3, _ = average_outputs(mc, test[0], seed=4)
    assert out1.device.type == "cuda" and spread1 is not None and spread2 is not None
    assert torch.equal(out1, out2) and torch.equal(spread1, spread2)
    assert not torch.equal(out1, out3)
    assert spread1.shape == (len(X),) and bool((spread1 > 0).any())
    assert not any(m.training for m in net.modules())  # dropout and BatchNorm back in eval
    metrics = averaged_metrics(mc, t.objective, test, "test", seed=3)
    assert metrics["test_accuracy"] > 0.85


# ---------------------------------------------------------------------------- the Bayes sampler


def _bowl_study(default_device: str) -> tuple[optuna.Study, list[str]]:
    """16 trials of the Bayes sampler (seed 0) on a bowl in a float and a wide int parameter,
    with torch's default device set to ``default_device`` meanwhile; the devices the objective
    found as default."""
    seen: list[str] = []

    def bowl(trial):
        x = trial.suggest_float("x", -3.0, 3.0)
        n = trial.suggest_int("n", 1, 40)  # searched as a float, rounded back
        seen.append(torch.empty(0).device.type)
        return (x - 1.0) ** 2 + 0.01 * (n - 20) ** 2

    previous = torch.get_default_device()
    torch.set_default_device(default_device)
    try:
        study = optuna.create_study(sampler=BayesSampler(seed=0))
        study.optimize(bowl, n_trials=16)
    finally:
        torch.set_default_device(None if previous == torch.device("cpu") else previous)
    return study, seen


def test_the_bayes_sampler_under_a_cuda_default_device_suggests_as_on_the_cpu():
    on_gpu, seen = _bowl_study("cuda")
    assert seen == ["cuda"] * 16  # the caller's default device, untouched by the sampler
    assert torch.get_default_device() == torch.device("cpu")
    on_cpu, _ = _bowl_study("cpu")
    params = [t.params for t in on_gpu.trials]
    assert params == [t.params for t in on_cpu.trials]  # the GP runs on the CPU either way
    assert all(-3.0 <= p["x"] <= 3.0 and type(p["n"]) is int and 1 <= p["n"] <= 40 for p in params)
    assert on_gpu.best_value < 0.05

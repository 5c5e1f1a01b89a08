"""Augmentation: what trainwell's batch augmentation costs against the usual pipelines, and what
it buys on a small image set (lecture 001; issue 15's benchmarks).

Speed. One CNN (3 conv blocks 16-32-64, a 128-unit layer with dropout 0.25, 10 classes) trains
on ``builtin:mnist_sample`` (1x28x28, preprocessed with ``channel_mean_std``) at batch 128 with
Adam, the batches augmented by horizontal flip (p 0.5), random crop with 2 pixels of padding,
an affine map (rotation U(-10, 10) degrees, translation U(-0.1, 0.1) of the side), cutout (one
8x8 square) and mixup (alpha 0.2), by four pipelines, measured side by side in one process with
the intra-op threads pinned (``torch.set_num_threads(--threads)``, default 1):

- trainwell: the ``Trainer`` with the ``[augment]`` step (``Augmented``) on in-memory tensors;
- (a) a hand-written loop: a plain PyTorch loop over shuffled tensors applying the same
  operations to whole batches, written the way one writes them by hand;
- (b) per sample: the usual ``Dataset`` / ``DataLoader`` pipeline (``num_workers=0``, the
  threads pinned as above), each image augmented on its own in ``__getitem__`` with plain torch
  as torchvision's tensor transforms do it (flip, pad and slice, ``affine_grid`` +
  ``grid_sample`` of one image, a zeroed square), mixup on the collated batch;
- (c) kornia's ``augmentation`` module with the same operations, when it is installed.

All four train the same model with the Trainer's optimizer (Adam, lr 1e-3, torch's fused
kernel), so that they differ by their loop and their augmentation only.

Each pipeline runs ``--steps`` steps after 2 warm-up steps, ``--reps`` times in turn (each
repetition starting with the next pipeline, so that none always follows the same one); the table
shows medians: images per second, milliseconds per step spent augmenting (per-sample pipelines:
producing the batch), that share of the step, and each pipeline's time per step and time spent
augmenting against trainwell's (above 1: slower than trainwell).

Quality (``--seeds``, at least 3): 50 training images per class of ``builtin:mnist_sample``
(``data.params.train_per_class``; val: 15% of the 2,500 others, for the best epoch), tested on
its fixed 2,500 test images, with a 3-conv CNN (16-32-64, a 128-unit layer, dropout 0.25) run
through ``trainwell.fit``: no augmentation; the augmentation below; it with test-time
augmentation (``[tta]``: the identity and the trained shifts, fastai's beta 0.25); it with
Monte Carlo dropout (``tta.mc_samples``); both. The 8x8 digits (``builtin:digits_images``) then
show where test-time augmentation hurts: shifted views of a model never trained on shifts.

    nice python benchmarks/augment.py --threads 1 --seeds 3
    python benchmarks/augment.py --quick        # a smoke run: tiny sizes, numbers meaningless
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own spelling
from torch import Tensor, nn

#: the speed table's operations, as an ``[augment]`` section
SPEED_AUGMENT: dict[str, Any] = {
    "hflip": {"p": 0.5},
    "crop": {"padding": 2},
    "affine": {"rotate": 10.0, "translate": 0.1},
    "cutout": {"size": 8},
    "mixup": {"alpha": 0.2},
}
#: the quality table's augmentation for digits (no flips: a mirrored digit is another shape)
QUALITY_AUGMENT: dict[str, Any] = {
    "crop": {"padding": 2},
    "affine": {"rotate": 10.0, "scale": [0.9, 1.1]},
    "cutout": {"size": 8, "p": 0.5},
}
MODEL: dict[str, Any] = {"arch": "cnn", "channels": [16, 32, 64], "hidden": [128],
                         "dropout": 0.25}
#: --quick: a model small enough for a smoke run
TINY_MODEL: dict[str, Any] = {"arch": "cnn", "channels": [4, 4, 4], "hidden": [8],
                              "dropout": 0.25}
_MODEL = [MODEL]  # the model of this invocation (TINY_MODEL with --quick)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------- the operations


def hand_augment(x: Tensor, y: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """(a): the five operations on a whole batch, as written by hand; ``y``: one-hot rows."""
    n, c, h, w = x.shape
    dev = x.device
    flip = (torch.rand(n, generator=g) < 0.5).to(dev)
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    p = 2  # random crop of the image padded with p zeros: one gather per axis
    dy = torch.randint(0, 2 * p + 1, (n,), generator=g).to(dev)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=g).to(dev)
    padded = F.pad(x, (p, p, p, p))
    rows = (dy.view(n, 1) + torch.arange(h, device=dev)).view(n, 1, h, 1).expand(n, c, h, w + 2 * p)
    x = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w, device=dev)).view(n, 1, 1, w).expand(n, c, h, w)
    x = x.gather(3, cols)
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(10.0)  # affine: one grid_sample
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.1 * 2  # a fraction of the side, in [-1, 1]
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cy = torch.randint(0, h, (n, 1, 1), generator=g).to(dev)  # cutout: an 8x8 square of zeros
    cx = torch.randint(0, w, (n, 1, 1), generator=g).to(dev)
    ii = torch.arange(h, device=dev).view(1, h, 1)
    jj = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ii - cy >= -4) & (ii - cy < 4) & (jj - cx >= -4) & (jj - cx < 4)
    x = x * (~inside).unsqueeze(1).to(x.dtype)
    return mixup(x, y, g)


def mixup(x: Tensor, y: Tensor, g: torch.Generator, alpha: float = 0.2) -> tuple[Tensor, Tensor]:
    """Mixup of a batch with one permutation of itself, ``lam ~ Beta(alpha, alpha)`` per sample."""
    n = len(x)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    from scipy.special import betaincinv

    lam = torch.from_numpy(betaincinv(alpha, alpha, u.numpy())).to(x.device, x.dtype)
    perm = torch.randperm(n, generator=g).to(x.device)
    x = lam.view(n, 1, 1, 1) * x + (1 - lam.view(n, 1, 1, 1)) * x[perm]
    y = lam.view(n, 1) * y + (1 - lam.view(n, 1)) * y[perm]
    return x, y


def one_image_augment(img: Tensor) -> Tensor:
    """(b): the four per-sample operations on one image (C, H, W), as torchvision's tensor
    transforms do it, drawing from torch's global generator."""
    c, h, w = img.shape
    if torch.rand(()) < 0.5:
        img = img.flip(-1)
    p = 2
    top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
    img = F.pad(img, (p, p, p, p))[:, top:top + h, left:left + w]
    angle = float(torch.empty(()).uniform_(-10.0, 10.0))
    tx, ty = (float(v) for v in torch.empty(2).uniform_(-0.1, 0.1) * 2)
    a = math.radians(angle)
    theta = torch.tensor([[[math.cos(a), -math.sin(a), tx], [math.sin(a), math.cos(a), ty]]],
                         dtype=img.dtype)
    grid = F.affine_grid(theta, [1, c, h, w], align_corners=False)
    img = F.grid_sample(img.unsqueeze(0), grid, align_corners=False).squeeze(0)
    cy, cx = (int(v) for v in torch.randint(0, h, (2,)))
    img = img.clone()
    img[:, max(cy - 4, 0):cy + 4, max(cx - 4, 0):cx + 4] = 0.0
    return img


class PerSampleSet(torch.utils.data.Dataset):
    """(b): images augmented one by one as the ``DataLoader`` asks for them."""

    def __init__(self, X: Tensor, y: Tensor, n_classes: int) -> None:
        self.X, self.y, self.n_classes = X, y, n_classes

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return one_image_augment(self.X[i]), F.one_hot(self.y[i], self.n_classes).float()


# ---------------------------------------------------------------------------- speed


def _model(input_shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    from trainwell.config import load_config
    from trainwell.nn import build_model

    torch.manual_seed(seed)
    cfg = load_config({"model": _MODEL[0]})
    return build_model(cfg.model, input_shape, 10, "multiclass")


class TimedAugmenter:
    """An ``Augmenter`` that adds up the seconds its calls take."""

    def __init__(self, inner: Any, device: torch.device) -> None:
        self.inner, self.device, self.seconds = inner, device, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _sync(self.device)
        t0 = time.perf_counter()
        out = self.inner(*args, **kwargs)
        _sync(self.device)
        self.seconds += time.perf_counter() - t0
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def speed_trainwell(X: Tensor, y: Tensor, prepared: Any, steps: int, batch: int,
                    device: torch.device, threads: int) -> tuple[float, float]:
    """(seconds per step, augmenting seconds per step) of the Trainer with ``[augment]``."""
    from trainwell.data.augment.augmenter import Augmenter
    from trainwell.data.augment.config import AugmentConfig
    from trainwell.train import Trainer
    from trainwell.train.augmented import Augmented
    from trainwell.train.objective import Supervised

    augmenter = TimedAugmenter(Augmenter.fit(AugmentConfig.model_validate(SPEED_AUGMENT),
                                             prepared), device)
    step = Augmented(Supervised("cross_entropy", task="multiclass"), augmenter, seed=0)
    n = steps * batch
    trainer = Trainer(_model(tuple(X.shape[1:])), step=step, epochs=1, batch_size=batch,
                      seed=0, device=device, threads=threads)
    trainer.fit((X[:n], y[:n]))
    return trainer.history[-1]["epoch_time"] / steps, augmenter.seconds / steps


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The Trainer's own optimizer (Adam, lr 1e-3, torch's fused kernel where there is one), so
    that the pipelines differ by their loop and augmentation only."""
    from trainwell.train.optim import make_optimizer

    return make_optimizer("adam", model)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, xb: Tensor, yb: Tensor) -> None:
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _batch_loop(augment: Any, X: Tensor, y: Tensor, steps: int, batch: int,
                device: torch.device) -> tuple[float, float]:
    """Seconds per step and per augmentation of a plain loop over shuffled tensors on the
    device, ``augment(xb, yb, g)`` applied to each batch of one-hot targets."""
    model = _model(tuple(X.shape[1:])).to(device)
    opt = _optimizer(model)
    g = torch.Generator().manual_seed(0)
    Xd, Yd = X.to(device), F.one_hot(y, 10).float().to(device)
    order = torch.randperm(len(X), generator=g).to(device)
    aug = 0.0
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        t1 = time.perf_counter()
        xb, yb = augment(Xd[idx], Yd[idx], g)
        _sync(device)
        aug += time.perf_counter() - t1
        _train_step(model, opt, xb, yb)
    _sync(device)
    return (time.perf_counter() - t0) / steps, aug / steps


def speed_hand(X: Tensor, y: Tensor, steps: int, batch: int, device: torch.device
               ) -> tuple[float, float]:
    """(a): a plain loop over shuffled tensors, the batch operations written by hand."""
    return _batch_loop(hand_augment, X, y, steps, batch, device)


def speed_per_sample(X: Tensor, y: Tensor, steps: int, batch: int, device: torch.device
                     ) -> tuple[float, float]:
    """(b): a ``Dataset`` augmenting each image, a ``DataLoader`` collating them, mixup."""
    model = _model(tuple(X.shape[1:])).to(device)
    opt = _optimizer(model)
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(PerSampleSet(X, y, 10), batch_size=batch, shuffle=True,
                                         num_workers=0, generator=g)
    it = iter(loader)
    data = 0.0
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        t1 = time.perf_counter()
        xb, yb = next(it)
        xb, yb = mixup(xb.to(device), yb.to(device), g)
        _sync(device)
        data += time.perf_counter() - t1
        _train_step(model, opt, xb, yb)
    _sync(device)
    return (time.perf_counter() - t0) / steps, data / steps


def kornia_pipeline() -> Any:
    """(c): kornia's versions of the four per-sample operations, or None when not installed."""
    try:
        import kornia.augmentation as K  # noqa: N812 - kornia's own spelling
    except ImportError:
        return None
    area = 64 / (28 * 28)  # an 8x8 square of a 28x28 image
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomCrop((28, 28), padding=2),
        K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), p=1.0),
        K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=0.0, p=1.0),
    )


def speed_kornia(pipe: Any, X: Tensor, y: Tensor, steps: int, batch: int,
                 device: torch.device) -> tuple[float, float]:
    """(c): kornia on whole batches (it draws from torch's global generator), mixup by hand."""
    return _batch_loop(lambda xb, yb, g: mixup(pipe(xb), yb, g), X, y, steps, batch, device)


def speed_table(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    from trainwell.data import prepare
    from trainwell.data.config import DataConfig

    prepared = prepare(DataConfig(source="builtin:mnist_sample"), seed=0)
    X = torch.cat([prepared.train.X, prepared.val.X])  # 2,500 images: the test ones stay apart
    y = torch.cat([prepared.train.y, prepared.val.y])
    steps, batch = args.steps, args.batch
    need = (steps + 2) * batch
    if need > len(X):  # more steps than images: repeat them (the speed is what is measured)
        k = -(-need // len(X))
        X, y = X.repeat(k, 1, 1, 1), y.repeat(k)
    pipe = kornia_pipeline()
    runs: dict[str, Any] = {
        "trainwell": lambda s: speed_trainwell(X, y, prepared, s, batch, device, args.threads),
        "(a) hand-written batch loop": lambda s: speed_hand(X, y, s, batch, device),
        "(b) per-sample Dataset/DataLoader": lambda s: speed_per_sample(X, y, s, batch, device),
    }
    if pipe is not None:
        pipe = pipe.to(device)
        runs["(c) kornia"] = lambda s: speed_kornia(pipe, X, y, s, batch, device)
    for run in runs.values():  # warm-up: the first calls of a process load and plan kernels
        run(2)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    names = list(runs)
    for rep in range(args.reps):  # in turn, so that a busy moment hits every pipeline alike,
        k = rep % len(names)      # each repetition starting with the next one (no order bias)
        for name in names[k:] + names[:k]:
            samples[name].append(runs[name](steps))
    rows = []
    for name, got in samples.items():
        step_s = statistics.median(s for s, _ in got)
        aug_s = statistics.median(a for _, a in got)
        rows.append({"pipeline": name, "images_per_s": batch / step_s, "step_ms": step_s * 1e3,
                     "augment_ms": aug_s * 1e3, "augment_share": aug_s / step_s})
    base, base_aug = rows[0]["step_ms"], rows[0]["augment_ms"]
    for row in rows:
        row["time_vs_trainwell"] = row["step_ms"] / base
        row["augment_vs_trainwell"] = row["augment_ms"] / base_aug
    if pipe is None:
        rows.append({"pipeline": "(c) kornia", "missing": "not installed"})
    return rows


def print_speed(rows: list[dict[str, Any]], args: argparse.Namespace, device: torch.device
                ) -> None:
    chans = "-".join(map(str, _MODEL[0]["channels"]))
    print(f"\nSpeed: CNN {chans} on 1x28x28, batch {args.batch}, hflip + crop(2) + affine(10 "
          f"deg, 0.1) + cutout(8) + mixup(0.2); {device}, {torch.get_num_threads()} thread(s); "
          f"median of {args.reps} x {args.steps} steps")
    print(f"{'pipeline':<36} {'images/s':>9} {'step ms':>8} {'augment ms':>10} {'share':>6} "
          f"{'step x trainwell':>16} {'augment x trainwell':>19}")
    for r in rows:
        if "missing" in r:
            print(f"{r['pipeline']:<36} {r['missing']}")
            continue
        print(f"{r['pipeline']:<36} {r['images_per_s']:>9.0f} {r['step_ms']:>8.1f} "
              f"{r['augment_ms']:>10.1f} {r['augment_share']:>6.1%} "
              f"{r['time_vs_trainwell']:>15.2f}x {r['augment_vs_trainwell']:>18.2f}x")
    print("augment ms: per step, the augmentation (per-sample pipelines: producing the batch); "
          "share: of the step; x trainwell: the time against trainwell's (above 1: slower)")


# ---------------------------------------------------------------------------- quality


def _fit(cfg: dict[str, Any], root: str, name: str) -> Any:
    import trainwell

    cfg = {**cfg, "runs_dir": root, "log": {"report": False}, "doctor": {"enabled": False}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the identity-only TTA warning is expected here
        return trainwell.fit(cfg, name=name, quiet=True)


def _both(run: Any, mc: int, seed: int) -> float:
    """Test accuracy with test-time augmentation and Monte Carlo dropout together."""
    from trainwell.data.augment.config import trained_geometry
    from trainwell.train.test_time import averaged_metrics, averaging_model

    cfg = run.config
    averaged = averaging_model(run.model, run.prepared.task, cfg.tta,
                               trained_geometry(cfg.augment, run.prepared.input_shape),
                               run.prepared.input_shape, tta=True, mc_samples=mc)
    metrics = averaged_metrics(averaged, run.trainer.objective, run.prepared.test, "test",
                               seed=seed)
    return float(metrics["test_accuracy"])


def quality_mnist(args: argparse.Namespace, root: str) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {k: [] for k in (
        "no augmentation", "augmentation", "augmentation + TTA", "augmentation + MC dropout",
        "augmentation + TTA + MC dropout")}
    for seed in range(args.seeds):
        base = {"seed": seed,
                "data": {"source": "builtin:mnist_sample",
                         "params": {"train_per_class": args.per_class}},
                "model": _MODEL[0],
                "train": {"epochs": args.epochs, "batch_size": 64, "threads": args.threads,
                          "early_stopping": {"patience": None}, "checkpoint_every": 0}}
        plain = _fit(base, root, f"mnist-none-{seed}")
        aug = _fit({**base, "augment": QUALITY_AUGMENT,
                    "tta": {"enabled": True, "mc_samples": args.mc}}, root, f"mnist-aug-{seed}")
        rows["no augmentation"].append(plain.results["test"]["test_accuracy"])
        rows["augmentation"].append(aug.results["test"]["test_accuracy"])
        rows["augmentation + TTA"].append(aug.results["test_tta"]["test_accuracy"])
        rows["augmentation + MC dropout"].append(aug.results["test_mc"]["test_accuracy"])
        rows["augmentation + TTA + MC dropout"].append(_both(aug, args.mc, seed))
        if seed == 0:
            views = aug.results["tta"]["views"]
            print(f"  (TTA views: {', '.join(views)}; beta {aug.results['tta']['beta']}; "
                  f"{len(plain.prepared.train)} training images, "
                  f"{len(plain.prepared.test)} test images)")
    return rows


def quality_digits(args: argparse.Namespace, root: str) -> dict[str, list[float]]:
    """8x8 digits without augmentation: trainwell's TTA keeps the identity view (nothing was
    trained to shift); the one-pixel shifts a fixed recipe would add (identity and four
    shifts, blended with the plain prediction by beta) are what it avoids."""
    from trainwell.data.augment.tta import View
    from trainwell.train.test_time import TestTimeAverage, averaged_metrics

    rows: dict[str, list[float]] = {k: [] for k in (
        "no augmentation", "trainwell TTA (identity only)", "1-pixel shifts, beta 0.25",
        "1-pixel shifts, beta 0")}
    shifts = [View(), View(dx=1), View(dx=-1), View(dy=1), View(dy=-1)]
    for seed in range(args.seeds):
        digits_model = {"arch": "cnn", "channels": [16, 32], "hidden": [64]}
        run = _fit({"seed": seed, "data": {"source": "builtin:digits_images"},
                    "model": TINY_MODEL if args.quick else digits_model,
                    "train": {"epochs": args.digits_epochs, "threads": args.threads,
                              "early_stopping": {"patience": None}, "checkpoint_every": 0},
                    "tta": {"enabled": True}}, root, f"digits-{seed}")
        rows["no augmentation"].append(run.results["test"]["test_accuracy"])
        rows["trainwell TTA (identity only)"].append(run.results["test_tta"]["test_accuracy"])
        for beta in (0.25, 0.0):  # fastai's default blend, and the views' mean alone
            naive = TestTimeAverage(run.model, "multiclass", shifts, beta=beta)
            got = averaged_metrics(naive, run.trainer.objective, run.prepared.test, "test",
                                   seed=seed)
            rows[f"1-pixel shifts, beta {beta:g}"].append(float(got["test_accuracy"]))
    return rows


def print_quality(title: str, rows: dict[str, list[float]]) -> None:
    base = rows[next(iter(rows))]
    print(f"\n{title}")
    print(f"{'':<34} {'test accuracy':>13} {'per seed':>26} {'vs first row':>12}")
    for name, accs in rows.items():
        mean = statistics.mean(accs)
        delta = 100 * (mean - statistics.mean(base))
        seeds = " ".join(f"{a:.3f}" for a in accs)
        print(f"{name:<34} {mean:>13.2%} {seeds:>26} {delta:>+10.2f} pt")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the speed table)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=50, help="training images per class")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--digits-epochs", type=int, default=30)
    ap.add_argument("--mc", type=int, default=10, help="Monte Carlo dropout passes")
    ap.add_argument("--only", choices=["speed", "quality"], default=None)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run with tiny sizes (checks the script; numbers meaningless)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.reps, args.seeds, args.per_class = 2, 1, 1, 3
        args.epochs, args.digits_epochs, args.mc, args.batch = 1, 1, 1, 32
    elif args.seeds < 3:
        ap.error("--seeds must be at least 3 (use --quick for a smoke run)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _MODEL[0] = TINY_MODEL if args.quick else MODEL
    torch.set_num_threads(args.threads)
    logging.getLogger("trainwell").setLevel(logging.WARNING)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); load average "
          f"{os.getloadavg()[0]:.2f}" + ("; --quick: sizes too small to mean anything"
                                         if args.quick else ""))
    out: dict[str, Any] = {}
    if args.only in (None, "speed"):
        out["speed"] = speed_table(args, device)
        print_speed(out["speed"], args, device)
    if args.only in (None, "quality"):
        with tempfile.TemporaryDirectory() as root:
            print(f"\nQuality: builtin:mnist_sample, {args.per_class} training images per "
                  f"class, {args.epochs} epochs, {args.seeds} seeds; augmentation: "
                  + ", ".join(f"{k} {v}" for k, v in QUALITY_AUGMENT.items())
                  + f"; MC dropout: {args.mc} passes")
            out["mnist"] = quality_mnist(args, root)
            print_quality("28x28 MNIST sample, fixed 2,500 test images", out["mnist"])
            out["digits"] = quality_digits(args, root)
            print_quality(f"8x8 digits (builtin:digits_images), no augmentation, "
                          f"{args.digits_epochs} epochs: where test-time shifts hurt",
                          out["digits"])
    return out


if __name__ == "__main__":
    main()

"""Learning-rate tools: the LR range test and lecture 002's coarse probe (1e-1 ... 1e-4)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainwell.diagnose.problem import OptimizerSpec, Problem, batches

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: the file the doctor writes the range test's curve to, in the run directory (or ``out_dir``)
LR_FIGURE = "lr_range.png"


@dataclass
class LRRangeResult:
    """The curve of an LR range test and what it suggests.

    Attributes:
        lrs: the learning rate of each minibatch, rising exponentially.
        losses: the smoothed loss at each of them.
        suggested_lr: the LR of the lowest smoothed loss divided by 10 (None when no LR
            lowered the loss); also :attr:`suggestion`.
        min_loss_lr: the LR of the lowest smoothed loss.
        diverge_lr: where the loss diverged (the test stopped there), or None.
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed
    suggested_lr: float | None = None
    min_loss_lr: float | None = None
    diverge_lr: float | None = None

    @property
    def suggestion(self) -> float | None:
        """The suggested learning rate (:attr:`suggested_lr`)."""
        return self.suggested_lr

    def plot(self, ax: Axes | None = None) -> Figure:
        """The curve: smoothed loss against the LR (log axis), the suggestion, the lowest loss
        and where the loss diverged marked; on ``ax`` if given, else on a new matplotlib
        ``Figure`` (no pyplot state; a notebook shows it, ``fig.savefig(path)`` writes it).

        Example:
            >>> res = LRRangeResult([1e-4, 1e-3, 1e-2], [1.0, 0.6, 2.0], 1e-4, 1e-3, 1e-2)
            >>> res.plot().axes[0].get_xscale()
            'log'
        """
        if ax is None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(5.2, 3.4), dpi=110, layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.get_figure()  # type: ignore[assignment]
        ax.plot(self.lrs, self.losses, color="C0", label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if self.suggested_lr is not None:
            ax.axvline(self.suggested_lr, color="C2", linestyle="--",
                       label=f"suggested {self.suggested_lr:.2g}")
        if self.min_loss_lr is not None:
            ax.axvline(self.min_loss_lr, color="C1", linestyle=":",
                       label=f"lowest loss {self.min_loss_lr:.2g}")
        if self.diverge_lr is not None:
            ax.axvline(self.diverge_lr, color="C3", linestyle="-.",
                       label=f"diverges {self.diverge_lr:.2g}")
        if self.losses:
            low, high = min(self.losses), self.losses[0]
            ax.set_ylim(low - 0.05 * abs(high - low or 1), max(high, low) * 1.5 + 1e-12)
        ax.set_title("LR range test")
        ax.legend(fontsize=8, frameon=False)
        return fig

    def save_plot(self, path: str | Path) -> Path:
        """Write :meth:`plot` as a PNG to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.plot().savefig(path, dpi=90, metadata={"Software": None})
        return path

    def to_dict(self, points: int = 50) -> dict[str, Any]:
        step = max(1, len(self.lrs) // points)
        return {
            "suggested_lr": self.suggested_lr,
            "min_loss_lr": self.min_loss_lr,
            "diverge_lr": self.diverge_lr,
            "lrs": self.lrs[::step],
            "losses": self.losses[::step],
        }


def lr_range_test(
    p: Problem,
    iters: int = 100,
    lr_min: float = 1e-6,
    lr_max: float = 10.0,
    batch_size: int = 64,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
) -> LRRangeResult:
    """Raise the LR exponentially from ``lr_min`` to ``lr_max`` over ``iters`` minibatches.

    The loss is smoothed with a bias-corrected exponential moving average (as Adam corrects its
    moments, lecture 002). The test stops once the smoothed loss exceeds ``diverge_factor`` times
    its minimum or is not finite; that LR is reported as where the loss diverges. The suggestion
    is the LR of the lowest smoothed loss divided by 10.
    """
    with p.seeded():  # dropout draws from the forked, seeded RNG
        model = p.fresh().train()
        opt = p.optimizer(model.parameters(), lr_min)
        gamma = (lr_max / lr_min) ** (1 / max(iters - 1, 1))
        res = LRRangeResult()
        avg, best = 0.0, math.inf
        it = batches(len(p.X), batch_size, torch.Generator().manual_seed(p.seed))
        for i in range(iters):
            lr = lr_min * gamma**i
            for g in opt.param_groups:
                g["lr"] = lr
            idx = next(it)
            loss = p.loss(model(p.X[idx]), p.target(p.y[idx]))
            value = loss.item()
            if not math.isfinite(value):
                res.diverge_lr = lr
                break
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (i + 1))
            res.lrs.append(lr)
            res.losses.append(smooth)
            best = min(best, smooth)
            if i > 5 and smooth > diverge_factor * best:
                res.diverge_lr = lr
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if res.losses:
        k = min(range(len(res.losses)), key=res.losses.__getitem__)
        res.min_loss_lr = res.lrs[k]
        res.suggested_lr = res.lrs[k] / 10
    return res


def train_at(p: Problem, lr: float, iters: int = 100, batch_size: int = 64) -> dict[str, Any]:
    """Train a fresh copy for ``iters`` minibatches at a constant LR; start and end loss."""
    with p.seeded():
        model = p.fresh().train()
        opt = p.optimizer(model.parameters(), lr)
        it = batches(len(p.X), batch_size, torch.Generator().manual_seed(p.seed))
        losses: list[float] = []
        diverged_at = None
        for i in range(iters):
            idx = next(it)
            loss = p.loss(model(p.X[idx]), p.target(p.y[idx]))
            value = loss.item()
            if not math.isfinite(value):
                diverged_at = i
                break
            losses.append(value)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    k = max(1, min(10, len(losses) // 5))
    start = losses[0] if losses else float("nan")
    end = sum(losses[-k:]) / k if losses else float("nan")
    # exploded: a loss 10x the first one (it may come back down later, onto dead units)
    if diverged_at is None:
        diverged_at = next((i for i, v in enumerate(losses) if v > 10 * start), None)
    if diverged_at is None and losses and end > 3 * start:
        diverged_at = len(losses)
    return {
        "lr": lr,
        "start_loss": start,
        "end_loss": end,
        "peak_loss": max(losses, default=float("nan")),
        "diverged_at": diverged_at,
        "diverged": diverged_at is not None,
    }


def coarse_probe(
    p: Problem, lrs: list[float], iters: int = 100, batch_size: int = 64
) -> list[dict[str, Any]]:
    """Lecture 002, step 3: which of 1e-1, 1e-2, 1e-3, 1e-4 makes the loss drop within ~100 its."""
    return [train_at(p, lr, iters, batch_size) for lr in lrs]


def find_lr(
    module: Any,
    data: Any,
    *,
    loss: Any = None,
    task: str | None = None,
    optimizer: OptimizerSpec = None,
    iters: int = 100,
    lr_min: float = 1e-6,
    lr_max: float = 10.0,
    batch_size: int = 64,
    seed: int = 0,
) -> LRRangeResult:
    """The LR range test on any ``nn.Module`` and its data; the module itself is not trained.

    ``data`` is what ``Trainer.fit`` takes: ``(X, y)``, a ``Dataset`` of ``(x, y)`` items or a
    ``DataLoader`` of ``(x, y)`` batches (the first 4096 rows are read into memory). ``loss``,
    ``task`` and ``optimizer`` take what :func:`trainwell.diagnose.doctor` takes. The result
    has the curve (``lrs``, ``losses``), the ``suggestion`` and ``plot()``.

    Example:
        >>> import torch
        >>> X, y = torch.randn(256, 4), torch.randint(0, 2, (256,))
        >>> res = find_lr(torch.nn.Linear(4, 2), (X, y), iters=30)
        >>> res.suggestion is not None, len(res.lrs) == len(res.losses)
        (True, True)
    """
    from trainwell.diagnose.recipe import make_problem

    p = make_problem(module, data, task=task, loss=loss, optimizer=optimizer, seed=seed)
    return lr_range_test(p, iters, lr_min, lr_max, min(batch_size, len(p.X)))

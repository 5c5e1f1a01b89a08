"""Test-time averaging: test-time augmentation views and Monte Carlo passes, combined.

Lecture 001: "Testing: marginalize over the randomness": fixed crops and flips averaged,
dropout averaged, fractional pooling averaged; lecture 004: "many forward passes with
different masks and average". What is averaged is the *probabilities* (softmax, or sigmoid for
binary), never the logits; for regression, the predicted values.

* **Views** (:mod:`trainwell.data.augment.tta`): one forward per view over the whole batch;
  the views' mean is blended with the plain prediction as fastai's ``Learner.tta`` does:
  ``final = beta * plain + (1 - beta) * mean_over_views`` (fastai's default beta: 0.25).
* **Monte Carlo passes** (:mod:`trainwell.nn.sampling`): ``mc_samples`` passes with dropout,
  DropConnect, stochastic depth and fractional max pooling sampling as in training while
  BatchNorm keeps its running statistics. The passes draw from torch's generator seeded by a
  seed inside :func:`seeded` (the caller's generator state is restored afterwards), so the
  same input and seed give the same predictions. Their spread is the *uncertainty*: the
  standard deviation over the passes (divided by N) of the probability of the predicted class,
  or, for regression, of each predicted value.

With both, each pass averages the views, and the passes are averaged.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainwell.data.augment.tta import (
    IDENTITY,
    View,
    check_image_input,
    identity_reason,
    tta_views,
)
from trainwell.errors import ConfigError
from trainwell.nn.sampling import describe_stochastic, sampling


def probabilities(out: Tensor, task: str) -> Tensor:
    """What is averaged: softmax over classes (multiclass), the sigmoid (binary, the shape of
    ``out`` kept), the values themselves (regression)."""
    out = out.float()
    if task == "multiclass":
        return torch.softmax(out, dim=1)
    if task == "binary":
        return torch.sigmoid(out)
    return out


def as_logits(p: Tensor, task: str) -> Tensor:
    """Raw outputs whose :func:`probabilities` are ``p``: ``log p`` (multiclass: its softmax is
    ``p`` again, as ``p`` sums to 1), ``log(p / (1 - p))`` (binary), ``p`` itself (regression).
    Metrics and losses on them are those of the averaged prediction (cross-entropy on ``log p``
    is the negative log of the averaged probability of the true class)."""
    if task == "regression":
        return p
    tiny = torch.finfo(p.dtype).tiny
    if task == "multiclass":
        return p.clamp_min(tiny).log()
    return p.clamp_min(tiny).log() - (1 - p).clamp_min(tiny).log()


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Within the block torch's generator (and the device's) starts from ``seed``; the caller's
    state is restored afterwards."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def require_stochastic(model: nn.Module, what: str = "mc_samples") -> str:
    """The stochastic layers of ``model`` as words; a model without any is refused: every
    Monte Carlo pass would give the same prediction."""
    layers = describe_stochastic(model)
    if not layers:
        raise ConfigError(
            f"{what} needs a model with a stochastic layer (dropout, DropConnect, stochastic "
            "depth, fractional max pooling) to sample; this run's model has none (or only with "
            "p = 0), so every pass would give the same prediction: predict without it, or "
            "train with e.g. model.dropout > 0"
        )
    return layers


class TestTimeAverage(nn.Module):
    """A trained model whose output is the test-time average: for metrics, losses and
    predictions unchanged, :meth:`forward` gives the raw outputs (:func:`as_logits`) of the
    averaged probabilities; :meth:`average` gives them with the Monte Carlo spread.

    Args:
        model: the trained model.
        task: ``binary``, ``multiclass`` or ``regression``.
        views: the test-time views (:func:`trainwell.data.augment.tta.tta_views`); the
            identity alone: no test-time augmentation.
        mc_samples: Monte Carlo passes with the stochastic layers sampling; 0: one
            deterministic pass (eval mode).
        beta: weight of the plain prediction (eval mode, no view) in the final one;
            ``beta * plain + (1 - beta) * mean``.

    Example:
        >>> net = nn.Linear(4, 3)
        >>> avg = TestTimeAverage(net, "multiclass")
        >>> x = torch.randn(2, 4)
        >>> torch.allclose(avg(x).softmax(1), net(x).softmax(1))
        True
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        model: nn.Module,
        task: str,
        views: Sequence[View] = (IDENTITY,),
        mc_samples: int = 0,
        beta: float = 0.0,
    ) -> None:
        super().__init__()
        if mc_samples < 0:
            raise ConfigError(f"mc_samples must be a whole number >= 0; got {mc_samples}")
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"beta must be between 0 and 1; got {beta}")
        if not views:
            raise ConfigError("test-time averaging needs at least one view")
        self.model = model
        self.task = task
        self.views = list(views)
        self.mc_samples = int(mc_samples)
        self.beta = float(beta)

    def _views_mean(self, x: Tensor) -> Tensor:
        total: Tensor | None = None
        for view in self.views:
            p = probabilities(self.model(view(x)), self.task)
            total = p if total is None else total + p
        assert total is not None
        return total / len(self.views)

    def average(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(averaged probabilities or values, spread)``; the spread (one value per row for
        classification, per row and target for regression) only with Monte Carlo passes."""
        if self.mc_samples:
            with sampling(self.model):
                passes = torch.stack([self._views_mean(x) for _ in range(self.mc_samples)])
            mean = passes.mean(0)
        else:
            self.model.eval()
            mean = self._views_mean(x)
        blend = self.beta > 0 and not (self.views == [IDENTITY] and not self.mc_samples)
        if blend:
            self.model.eval()
            mean = self.beta * probabilities(self.model(x), self.task) + (1 - self.beta) * mean
        if not self.mc_samples:
            return mean, None
        spread = passes.std(0, correction=0)
        if self.task == "multiclass":
            spread = spread.gather(1, mean.argmax(1, keepdim=True)).squeeze(1)
        elif self.task == "binary":
            spread = spread.reshape(len(x), -1)[:, 0]
        return mean, spread

    def forward(self, x: Tensor) -> Tensor:
        return as_logits(self.average(x)[0], self.task)


def average_outputs(
    averaged: TestTimeAverage, X: Tensor, *, seed: int = 0, batch_size: int = 4096
) -> tuple[Tensor, Tensor | None]:
    """``(raw outputs of the averaged prediction, spread or None)`` over all of ``X`` in
    batches, the Monte Carlo passes seeded by ``seed`` (on the model's device)."""
    device = next((p.device for p in averaged.parameters()), torch.device("cpu"))
    outs: list[Tensor] = []
    spreads: list[Tensor] = []
    with seeded(seed, device), torch.inference_mode():
        for i in range(0, len(X), batch_size):
            if averaged.views == [IDENTITY] and not averaged.mc_samples:
                # the plain prediction: the model's own outputs, not log(softmax) of them, so
                # that predictions equal the plain ones bit for bit, as docs/tta.md says
                averaged.model.eval()
                outs.append(averaged.model(X[i : i + batch_size].to(device)))
                continue
            mean, spread = averaged.average(X[i : i + batch_size].to(device))
            outs.append(as_logits(mean, averaged.task))
            if spread is not None:
                spreads.append(spread)
    if not outs:
        empty = averaged.model(X[:0].to(device)) if len(X) == 0 else None
        return (empty if empty is not None else torch.zeros(0)), None
    return torch.cat(outs), (torch.cat(spreads) if spreads else None)


def averaged_metrics(
    averaged: TestTimeAverage, objective: Any, data: Any, prefix: str, *, seed: int = 0,
    batch_size: int = 1024
) -> dict[str, float]:
    """``<prefix>_loss`` and the task's metrics of the averaged prediction on ``data`` (a
    split: ``(X, y)`` tensors or a dataset of pairs), as ``objective.evaluate`` computes
    them for the plain model."""
    from trainwell.train.data import as_batches

    device = next((p.device for p in averaged.parameters()), torch.device("cpu"))
    batches = as_batches(data, batch_size, False, None, device)
    with seeded(seed, device):
        return dict(objective.evaluate(averaged, batches, prefix))




def check_test_time_config(
    tta: Any, geometry: dict[str, Any], input_shape: Sequence[int], model: nn.Module
) -> None:
    """``[tta]`` against the prepared data and the built model, before the run directory
    exists: views on a table, a ``tta.shift`` beyond the trained shifts, or Monte Carlo
    passes of a model that samples nothing are refused."""
    if tta.enabled:
        check_image_input(tuple(input_shape), "tta.enabled")
        tta_views(geometry, shift=tta.shift, flips=tta.flips)
    if tta.mc_samples:
        require_stochastic(model, "tta.mc_samples")


def averaging_model(
    model: nn.Module,
    task: str,
    tta_config: Any,
    geometry: dict[str, Any],
    input_shape: Sequence[int],
    *,
    tta: bool = False,
    mc_samples: int = 0,
    names: tuple[str, str] = ("tta", "mc_samples"),
) -> TestTimeAverage:
    """The :class:`TestTimeAverage` of a run's model: its ``[tta]`` section (``tta_config``),
    the geometry its training augmentation used, and what is asked for.

    With ``tta`` and nothing geometric trained, the identity view alone is used and a warning
    says why. ``names`` are the option names that errors cite (``--tta`` on the command line).

    Raises:
        ConfigError: views on a table run, a negative ``mc_samples``, or Monte Carlo passes of
            a model without stochastic layers.
    """
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 0:
        raise ConfigError(
            f"{names[1]} must be a whole number >= 0 (0: no Monte Carlo passes); "
            f"got {mc_samples!r}"
        )
    views = [IDENTITY]
    if tta:
        check_image_input(tuple(input_shape), names[0])
        views = tta_views(geometry, shift=tta_config.shift, flips=tta_config.flips)
        if len(views) == 1:
            warnings.warn(
                f"{names[0]}: " + identity_reason(geometry, shift=tta_config.shift,
                                                  flips=tta_config.flips),
                UserWarning, stacklevel=2,
            )
    if mc_samples:
        require_stochastic(model, names[1])
    return TestTimeAverage(model, task, views, mc_samples, tta_config.beta if tta else 0.0)


def averaged_results(
    model: nn.Module, objective: Any, test: Any, task: str, tta_config: Any,
    geometry: dict[str, Any], input_shape: Sequence[int], seed: int
) -> dict[str, Any]:
    """What ``results.json`` adds with ``[tta]``: the test metrics with test-time augmentation
    (``test_tta``, when ``enabled``) and with Monte Carlo passes (``test_mc``, when
    ``mc_samples``), named as the plain ``test`` metrics, and ``tta``: the views, beta and
    passes used."""
    out: dict[str, Any] = {}
    info: dict[str, Any] = {}
    if tta_config.enabled:
        averaged = averaging_model(model, task, tta_config, geometry, input_shape, tta=True,
                                   names=("tta.enabled", "tta.mc_samples"))
        out["test_tta"] = averaged_metrics(averaged, objective, test, "test", seed=seed)
        info.update(views=[v.name for v in averaged.views], beta=averaged.beta)
    if tta_config.mc_samples:
        averaged = averaging_model(model, task, tta_config, geometry, input_shape,
                                   mc_samples=tta_config.mc_samples,
                                   names=("tta.enabled", "tta.mc_samples"))
        out["test_mc"] = averaged_metrics(averaged, objective, test, "test", seed=seed)
        info.update(mc_samples=tta_config.mc_samples, seed=seed,
                    stochastic_layers=describe_stochastic(model))
    out["tta"] = info
    return out


def uncertainty_columns(
    spread: Tensor, task: str, units: Callable[[Tensor], Tensor] | None = None
) -> dict[str, Any]:
    """Prediction-file columns of the Monte Carlo spread: ``uncertainty`` (classification, or
    one regression target), ``uncertainty_<i>`` per target of a multi-target regression.
    ``units`` takes regression outputs to the target's own units (an affine map, so the
    spread scales by its slope)."""
    if task != "regression":
        return {"uncertainty": spread.reshape(-1).cpu().numpy()}
    if units is not None:
        spread = units(spread) - units(torch.zeros_like(spread))
    values = spread.reshape(len(spread), -1).cpu().numpy()
    if values.shape[1] == 1:
        return {"uncertainty": values[:, 0]}
    return {f"uncertainty_{i}": values[:, i] for i in range(values.shape[1])}


__all__ = ["TestTimeAverage", "as_logits", "average_outputs", "averaged_metrics",
           "averaged_results", "averaging_model", "check_test_time_config", "probabilities",
           "require_stochastic", "seeded", "uncertainty_columns"]

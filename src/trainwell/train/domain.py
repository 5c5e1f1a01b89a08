"""Domain-adversarial training (DANN; Ganin & Lempitsky 2015, Ganin et al. JMLR 2016).

"Maximize label classification accuracy + minimize domain classification accuracy" (lecture
002): a feature extractor (the trunk) feeds a label head, trained on labelled source data, and a
domain classifier behind a gradient reversal layer, trained to tell source rows from unlabelled
target rows. The reversed gradient pushes the features to make the two domains
indistinguishable, so that the label head, trained on the source only, carries over to the
target. Each step sees a batch that is half source (from the trainer), half target (drawn by
the objective from the target data with its own generator, saved for exact resume):

    L = L_label(source) + L_domain(source -> 0, target -> 1),

with the features receiving ``-lambda_p`` times the domain loss's gradient, ``lambda_p =
2 / (1 + exp(-10 p)) - 1`` over the training progress ``p`` (or a fixed lambda).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainwell.errors import ConfigError, DataError
from trainwell.nn.heads import GradientReversal, MultiHead, dann_lr, grl_lambda, reverse_gradient
from trainwell.train.metrics import metric_names
from trainwell.train.objective import Objective, StepResult, Supervised, split_batch

if TYPE_CHECKING:
    from trainwell.train.config import LossConfig
    from trainwell.train.trainer import Trainer

_EVAL_ROWS = 4096  # target rows per evaluation batch


def domain_adversarial_model(
    trunk: nn.Module, label_head: nn.Module, domain_head: nn.Module, lambda_: float = 1.0
) -> MultiHead:
    """``MultiHead(trunk, {"label": label_head, "domain": GradientReversal + domain_head})``.

    The domain head gives one logit per row (source 0, target 1). :class:`DomainAdversarial`
    sets the reversal layer's ``lambda_`` every step; in a loop of your own, set it yourself
    (:func:`~trainwell.nn.heads.grl_lambda`).

    Example:
        >>> net = domain_adversarial_model(nn.Linear(2, 8), nn.Linear(8, 1), nn.Linear(8, 1))
        >>> sorted(net(torch.randn(4, 2)))
        ['domain', 'label']
    """
    domain = nn.Sequential(GradientReversal(lambda_), domain_head)
    return MultiHead(trunk, {"label": label_head, "domain": domain})


class _Branch(nn.Module):
    """One head on a multi-head model's features, as a module of its own (shares parameters)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: Tensor) -> Tensor:
        net: Any = self.model  # features(x) and heads, checked by DomainAdversarial.setup
        return net.heads[self.head](net.features(x))


def _as_rows(data: Any, what: str) -> tuple[Tensor, Tensor | None]:
    """``(X, y or None)`` of target data: a tensor / array, a pair ``(X, y)`` or a Split."""
    if hasattr(data, "X") and hasattr(data, "y"):
        data = (data.X, data.y)
    pair = isinstance(data, (tuple, list)) and len(data) == 2
    X, y = (data[0], data[1]) if pair else (data, None)
    if not isinstance(X, (Tensor, np.ndarray)):
        raise ConfigError(
            f"{what} must be a tensor or array of inputs, or a pair (inputs, labels); got "
            f"{type(X).__name__}"
        )
    X = torch.as_tensor(X)
    if X.ndim == 0 or len(X) == 0:
        raise DataError(f"{what} holds no rows (shape {tuple(X.shape)})")
    if y is not None:
        y = torch.as_tensor(y)
        if len(y) != len(X):
            raise DataError(f"{what} has {len(X)} rows but {len(y)} labels")
    return X, y


class DomainAdversarial(Objective):
    """Domain-adversarial training of a trunk, a label head and a domain classifier.

    The model is a :class:`~trainwell.nn.heads.MultiHead` (or any module with ``features(x)``
    and a ``heads`` mapping) holding the label head and a domain head that gives one logit;
    :func:`domain_adversarial_model` builds one. Any :class:`GradientReversal` inside the domain
    head gets this objective's lambda each step; a domain head without one gets the features
    reversed by the objective. Training batches are labelled source batches ``(x, y)``; each
    step draws as many target rows. Logged each epoch: ``train_label_loss``,
    ``train_domain_loss``, ``train_domain_accuracy`` (near chance, 0.5, is the goal) and
    ``train_grl_lambda``; each evaluation: the source metrics as usual (``val_loss``,
    ``val_accuracy``, ...: the label head alone) and, when target labels are known,
    ``val_target_loss``, ``val_target_accuracy``, ....

    Args:
        target: the target domain's inputs (a tensor or array), or ``(inputs, labels)``; labels
            are used only to evaluate, never to train.
        loss: the label head's loss: a registered name (``auto`` picks the task's), a
            ``LossConfig`` or a dict.
        task: the label task; default: from the loss, the targets and the head's width.
        lambda_: a fixed reversal strength; default: Ganin's schedule
            :func:`~trainwell.nn.heads.grl_lambda` over the progress ``p``.
        gamma: the schedule's gamma.
        total_steps: the run's length in updates, for ``p = step / total_steps``; default: the
            trainer's epochs times its steps per epoch (needed outside a Trainer, unless
            ``lambda_`` is fixed).
        target_eval: labelled target data ``(inputs, labels)`` to evaluate on; default: the
            labels of ``target``, if any.
        label_head, domain_head: the names of the two heads in the model.
        seed: seeds the generator that draws the target rows.
        top_k: top-k accuracy is logged for more than ``top_k`` classes.

    Example:
        >>> net = domain_adversarial_model(nn.Linear(2, 8), nn.Linear(8, 1), nn.Linear(8, 1))
        >>> obj = DomainAdversarial(torch.randn(50, 2), total_steps=100)
        >>> obj.setup(net, (torch.randn(8, 2), torch.randint(0, 2, (8,))))
        >>> res = obj.loss(net, (torch.randn(8, 2), torch.randint(0, 2, (8,))))
        >>> res.loss.backward()
        >>> obj.task
        'binary'
    """

    def __init__(
        self,
        target: Any,
        *,
        loss: str | LossConfig | dict[str, Any] = "auto",
        task: str | None = None,
        lambda_: float | None = None,
        gamma: float = 10.0,
        total_steps: int | None = None,
        target_eval: Any = None,
        label_head: str = "label",
        domain_head: str = "domain",
        seed: int = 0,
        top_k: int = 5,
    ) -> None:
        self.target_X, target_y = _as_rows(target, "target")
        self.eval_X: Tensor | None = None
        self.eval_y: Tensor | None = None
        if target_eval is not None:
            self.eval_X, self.eval_y = _as_rows(target_eval, "target_eval")
        if self.eval_X is not None and self.eval_y is None:
            raise ConfigError("target_eval must be a pair (inputs, labels): it is for evaluation")
        if self.eval_X is None and target_y is not None:
            self.eval_X, self.eval_y = self.target_X, target_y
        if lambda_ is not None:
            GradientReversal(lambda_)  # validates it
        if not math.isfinite(gamma) or gamma <= 0:
            raise ConfigError(f"gamma must be a finite number > 0; got {gamma!r}")
        if total_steps is not None and (isinstance(total_steps, bool) or total_steps < 1):
            raise ConfigError(f"total_steps must be an integer >= 1; got {total_steps!r}")
        self.label = Supervised(loss, task=task, top_k=top_k)
        self.task, self.top_k = self.label.task, top_k
        self.lambda_, self.gamma, self.total_steps = lambda_, gamma, total_steps
        self.label_head, self.domain_head = label_head, domain_head
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_done = 0  # updates made through this objective (its progress outside a Trainer)
        self._perm = torch.empty(0, dtype=torch.int64)  # the current pass over the target rows
        self._pos = 0
        self._grls: list[GradientReversal] = []
        self._sums: dict[str, Tensor] = {}
        self._count = 0
        self._last_lambda = math.nan

    # ------------------------------------------------------------------ setup

    def setup(self, model: nn.Module, first_batch: Any) -> None:
        heads = getattr(model, "heads", None)
        if not callable(getattr(model, "features", None)) or heads is None:
            raise ConfigError(
                "DomainAdversarial trains a model with features(x) and named heads, e.g. "
                "domain_adversarial_model(trunk, label_head, domain_head) or MultiHead(trunk, "
                f"{{'label': ..., 'domain': ...}}); got {type(model).__name__}"
            )
        for field, name in (("label_head", self.label_head), ("domain_head", self.domain_head)):
            if name not in heads:
                raise ConfigError(
                    f"{field} {name!r} is not a head of the model; heads: {', '.join(heads)}"
                )
        x, y = split_batch(first_batch)
        if not isinstance(x, Tensor):
            raise DataError("domain-adversarial training takes (x, y) batches of tensors")
        for what, X in (("target", self.target_X), ("target_eval", self.eval_X)):
            if X is not None and tuple(X.shape[1:]) != tuple(x.shape[1:]):
                raise DataError(
                    f"{what} rows have shape {tuple(X.shape[1:])} but the source rows have "
                    f"{tuple(x.shape[1:])}: the target domain must have the source's features"
                )
        self.target_X = self.target_X.to(device=x.device, dtype=x.dtype)
        if self.eval_X is not None:
            self.eval_X = self.eval_X.to(device=x.device, dtype=x.dtype)
            self.eval_y = self.eval_y.to(x.device) if self.eval_y is not None else None
        self.label.setup(_Branch(model, self.label_head), first_batch)
        self.task = self.label.task
        domain = heads[self.domain_head]
        self._grls = [m for m in domain.modules() if isinstance(m, GradientReversal)]
        net: Any = model
        was = model.training
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                width = domain(net.features(x[:2])).reshape(len(x[:2]), -1).shape[1]
        finally:
            model.train(was)
        if width != 1:
            raise ConfigError(
                f"the domain head {self.domain_head!r} must give one logit per row (source 0, "
                f"target 1); it gives {width}"
            )

    @property
    def n_outputs(self) -> int | None:
        return self.label.n_outputs

    # ------------------------------------------------------------------ the two data streams

    def draw_target(self, n: int) -> Tensor:
        """The next ``n`` target rows: passes over the target data in orders drawn from this
        objective's own generator, so that the source batches' order is untouched."""
        parts: list[Tensor] = []
        while n > 0:
            if self._pos >= len(self._perm):  # a new pass over the target rows
                self._perm = torch.randperm(len(self.target_X), generator=self.generator)
                self._pos = 0
            take = self._perm[self._pos : self._pos + n]
            self._pos += len(take)
            n -= len(take)
            parts.append(take)
        idx = torch.cat(parts).to(self.target_X.device)
        return self.target_X.index_select(0, idx)

    def progress(self) -> float:
        """``p`` in [0, 1]: the updates made over the run's length."""
        trainer: Trainer | None = getattr(self, "trainer", None)
        if trainer is not None:
            step = trainer.step
            total = self.total_steps or trainer.epochs * trainer.steps_per_epoch
        else:
            step, total = self.steps_done, self.total_steps or 0
        if total < 1:
            raise ConfigError(
                "DomainAdversarial needs total_steps (the run's length in updates) for its "
                "lambda schedule outside a Trainer; or give a fixed lambda_"
            )
        return min(step / total, 1.0)

    def current_lambda(self) -> float:
        """The reversal strength of this step: the fixed ``lambda_``, or ``grl_lambda(p)``."""
        return self.lambda_ if self.lambda_ is not None else grl_lambda(self.progress(), self.gamma)

    # ------------------------------------------------------------------ the step

    def loss(self, model: nn.Module, batch: Any) -> StepResult:
        if self.label.n_outputs is None:  # set by setup
            raise ConfigError(
                "DomainAdversarial: call setup(model, first_batch) first (a Trainer does)"
            )
        net: Any = model  # features(x) and heads, checked by setup
        x, y = split_batch(batch)
        b = len(x)
        xt = self.draw_target(b)  # each batch: half source, half target
        f = net.features(torch.cat([x, xt]))  # (2b, features)
        out = net.heads[self.label_head](f[:b])
        label_loss = self.label.loss_fn(out, y)
        lam = self._last_lambda = self.current_lambda()
        for grl in self._grls:
            grl.lambda_ = lam
        feats = f if self._grls else reverse_gradient(f, lam)
        d = net.heads[self.domain_head](feats).reshape(-1)  # (2b,) domain logits
        is_target = torch.cat([d.new_zeros(b), d.new_ones(b)])  # source 0, target 1
        domain_loss = F.binary_cross_entropy_with_logits(d, is_target)
        if model.training:
            self.steps_done += 1
            hits = ((d.detach() > 0) == is_target.bool()).sum().double()
            terms = {
                "label_loss": label_loss.detach().double() * b,
                "domain_loss": domain_loss.detach().double() * b,
                "domain_accuracy": hits / 2,
            }
            for k, v in terms.items():
                self._sums[k] = self._sums[k] + v if k in self._sums else v
            self._count += b
        return StepResult(label_loss + domain_loss, out, y)

    def eval_loss(self, model: nn.Module, batch: Any) -> StepResult:
        return self.label.eval_loss(_Branch(model, self.label_head), batch)

    def epoch_end(self) -> dict[str, float]:
        names = ["label_loss", "domain_loss", "domain_accuracy"]
        if self._count:
            values = (torch.stack([self._sums[k] for k in names]).cpu() / self._count).tolist()
        else:
            values = [math.nan] * len(names)
        self._sums, self._count = {}, 0
        res = {f"train_{k}": v for k, v in zip(names, values, strict=True)}
        res["train_grl_lambda"] = self._last_lambda
        return res

    def train_metric_names(self) -> list[str]:
        return [
            "train_label_loss",
            "train_domain_loss",
            "train_domain_accuracy",
            "train_grl_lambda",
        ]

    # ------------------------------------------------------------------ evaluation

    def metric_names(self, prefix: str = "val") -> list[str]:
        task = self.task or "multiclass"
        names = metric_names(task, self.n_outputs, self.top_k, prefix)
        if self.eval_y is not None:
            names += metric_names(task, self.n_outputs, self.top_k, f"{prefix}_target")
        return names

    def evaluate(
        self, model: nn.Module, batches: Iterable[Any], prefix: str = "val"
    ) -> dict[str, float]:
        """The label head on the source batches, and on the labelled target data if any."""
        branch = _Branch(model, self.label_head)
        res = self.label.evaluate(branch, batches, prefix)
        if self.eval_X is not None and self.eval_y is not None:
            res.update(self.label.evaluate(branch, self._target_batches(), f"{prefix}_target"))
        return res

    def _target_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        assert self.eval_X is not None and self.eval_y is not None
        for i in range(0, len(self.eval_X), _EVAL_ROWS):
            yield self.eval_X[i : i + _EVAL_ROWS], self.eval_y[i : i + _EVAL_ROWS]

    # ------------------------------------------------------------------ exact resume

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "perm": self._perm.clone(),
            "pos": self._pos,
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.generator.set_state(state["generator"].cpu())
        self._perm = state["perm"].cpu().long()
        self._pos, self.steps_done = int(state["pos"]), int(state["steps_done"])


class DannLR:
    """A Trainer callback setting the papers' learning rate ``lr0 / (1 + alpha p)^beta`` before
    every update (:func:`~trainwell.nn.heads.dann_lr`), ``lr0`` the optimizer's own ``lr``.

    Use it with the Trainer's default constant schedule; it refuses another.

    Example:
        >>> cb = DannLR()  # Trainer(model, step=DomainAdversarial(...), callbacks=[cb])
    """

    def __init__(self, alpha: float = 10.0, beta: float = 0.75) -> None:
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"DannLR {name} must be a finite number >= 0; got {value!r}")
        self.alpha, self.beta = alpha, beta

    def before_fit(self, trainer: Trainer) -> None:
        if trainer.schedule_spec.name != "constant":
            raise ConfigError(
                "DannLR sets the learning rate itself; train.schedule must be constant, got "
                f"{trainer.schedule_spec.name!r}"
            )

    def before_batch(self, trainer: Trainer) -> None:
        p = min(trainer.step / max(trainer.epochs * trainer.steps_per_epoch, 1), 1.0)
        for group in trainer.optimizer.param_groups:
            group["lr"] = dann_lr(p, group.get("initial_lr", group["lr"]), self.alpha, self.beta)


__all__ = ["DannLR", "DomainAdversarial", "domain_adversarial_model"]

"""A torch LR scheduler of one's own as ``Trainer(schedule=...)``.

``schedule=`` takes, besides a schedule name or ``ScheduleConfig`` (:mod:`trainwell.train.
schedules`), any ``torch.optim.lr_scheduler`` scheduler:

* an instance built on the optimizer given as ``optimizer=`` (a torch optimizer);
* a factory ``optimizer -> scheduler``, called once with the trainer's optimizer (so a name or
  a dict may stay as ``optimizer=``);
* a dict ``{"scheduler": instance or factory, "interval": "epoch" | "step", "monitor":
  "val_loss"}``, as Lightning's ``lr_scheduler_config`` reads.

It is stepped once per epoch, after validation (``interval = "epoch"``, the default, the way
torch's documentation steps a scheduler), or after every optimizer update (``"step"``: what
``OneCycleLR`` and ``CyclicLR`` expect). ``ReduceLROnPlateau`` is given the monitored metric of
the epoch's record (default ``val_loss``, or ``train_loss`` without validation data). Its
``state_dict()`` goes into the checkpoint (numbers, strings and lists only, as JSON), so that a
resumed fit goes on where the interrupted one was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from trainwell.errors import ConfigError

_KEYS = {"scheduler", "interval", "monitor"}


def _is_scheduler(obj: Any) -> bool:
    return isinstance(obj, (LRScheduler, ReduceLROnPlateau))


def user_schedule_spec(spec: Any) -> dict[str, Any] | None:
    """``{"scheduler", "interval", "monitor"}`` when ``spec`` is a torch scheduler (an
    instance, a factory or a dict naming one); None for a trainwell schedule spec (a name, a
    ``ScheduleConfig`` or its dict)."""
    if spec is None or isinstance(spec, str) or hasattr(type(spec), "model_fields"):
        return None
    if isinstance(spec, Mapping):
        if "scheduler" not in spec:
            return None  # a ScheduleConfig as a dict
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ConfigError(
                f"schedule: a scheduler dict takes {', '.join(sorted(_KEYS))}; got {unknown}"
            )
        out = {"scheduler": spec["scheduler"], "interval": spec.get("interval", "epoch"),
               "monitor": spec.get("monitor")}
    else:
        out = {"scheduler": spec, "interval": "epoch", "monitor": None}
    if out["interval"] not in ("epoch", "step"):
        raise ConfigError(f"schedule: interval must be 'epoch' or 'step'; got {out['interval']!r}")
    if not (_is_scheduler(out["scheduler"]) or callable(out["scheduler"])):
        raise ConfigError(
            "schedule must be a name, a ScheduleConfig or its dict, or a torch LR scheduler "
            f"(an instance or a factory optimizer -> scheduler); got "
            f"{type(out['scheduler']).__name__}"
        )
    return out


def _json_state(obj: Any) -> Any:
    """The JSON-able part of a scheduler's state (functions and objects left out)."""
    if isinstance(obj, Mapping):
        pairs = [(str(k), _json_state(v)) for k, v in obj.items()]
        return {k: v for k, v in pairs if v is not _SKIP}
    if isinstance(obj, (list, tuple)):
        items = [_json_state(v) for v in obj]
        return _SKIP if any(v is _SKIP for v in items) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return _SKIP


_SKIP = object()


class UserSchedule:
    """A torch scheduler behind :class:`~trainwell.train.schedules.LRSchedule`'s interface (the
    trainer's loop calls :meth:`step` after each update and :meth:`epoch_end` after each
    epoch).

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=1.0)
        >>> s = UserSchedule(opt, user_schedule_spec(
        ...     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)))
        >>> s.epoch_end({}); s.lr
        0.5
    """

    def __init__(self, optimizer: torch.optim.Optimizer, spec: dict[str, Any]) -> None:
        sched = spec["scheduler"]
        if not _is_scheduler(sched):
            factory: Callable[[torch.optim.Optimizer], Any] = sched
            sched = factory(optimizer)
            if not _is_scheduler(sched):
                raise ConfigError(
                    "schedule: the factory must return a torch LR scheduler; it returned "
                    f"{type(sched).__name__}"
                )
        if sched.optimizer is not optimizer:
            raise ConfigError(
                "schedule: the scheduler was built on another optimizer than the trainer's; "
                "pass that optimizer as optimizer=, or give a factory optimizer -> scheduler"
            )
        self.scheduler = sched
        self.optimizer = optimizer
        self.interval: str = spec["interval"]
        self.monitor: str | None = spec["monitor"]
        self.plateau = isinstance(sched, ReduceLROnPlateau)
        if self.plateau and self.interval == "step":
            raise ConfigError("schedule: ReduceLROnPlateau watches an epoch's metric; use "
                              "interval 'epoch'")
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]

    def step(self) -> None:
        """After each optimizer update: steps a ``"step"``-interval scheduler."""
        if self.interval == "step":
            self.scheduler.step()

    def epoch_end(self, metrics: dict[str, float]) -> None:
        """After each epoch: steps an ``"epoch"``-interval scheduler (a plateau one with its
        metric)."""
        if self.interval != "epoch":
            return
        if not self.plateau:
            self.scheduler.step()
            return
        name = self.monitor or ("val_loss" if "val_loss" in metrics else "train_loss")
        if name not in metrics:
            raise ConfigError(
                f"schedule: ReduceLROnPlateau monitors {name!r}, which is not logged; logged: "
                f"{', '.join(sorted(metrics))}"
            )
        self.scheduler.step(metrics[name])

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def lr_at(self, step: int) -> float:
        """The current LR (a torch scheduler has no closed form to ask)."""
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        state = _json_state(self.scheduler.state_dict())
        return {"user_scheduler": state if state is not _SKIP else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "user_scheduler" not in state:
            raise ConfigError("the checkpoint was written with a trainwell schedule, not a torch "
                              "scheduler: resume with the same schedule")
        own = self.scheduler.state_dict()
        own.update(state["user_scheduler"])
        self.scheduler.load_state_dict(own)


__all__ = ["UserSchedule", "user_schedule_spec"]

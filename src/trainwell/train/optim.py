"""Optimizers from ``torch.optim`` under the lectures' names and defaults (lecture 002)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.autograd.profiler as torch_profiler
from torch import nn
from torch.optim import optimizer as torch_optimizer

from trainwell.schema import section_from_spec
from trainwell.train.config import OPTIMIZER_NAMES, OPTIMIZER_TABLE, OptimizerConfig

logger = logging.getLogger(__name__)


def list_optimizers() -> list[str]:
    """The optimizer names ``train.optimizer.name`` accepts."""
    return OPTIMIZER_NAMES.names()


def _raw(cls: type, name: str) -> Callable[..., Any] | None:
    """``cls.name`` without torch's wrappers (profiler hook, ``torch._disable_dynamo``), or None."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return inspect.unwrap(vars(klass)[name])
    return None


if TYPE_CHECKING:  # the mixin is only ever used in front of a torch.optim class
    _OptimizerBase = torch.optim.Optimizer
else:
    _OptimizerBase = object


class _Eager(_OptimizerBase):
    """Mixed into a ``torch.optim`` class: its methods without the ``torch.compile`` guards.

    torch wraps ``add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict`` and
    ``step`` so that ``torch.compile`` leaves them alone; the wrappers import ``torch._dynamo``
    on first use, which costs about 0.8 s per process, more than a small training run. Outside
    ``torch.compile`` the guards do nothing, so these methods call the unwrapped ones there and
    the guarded ones under compilation. The arithmetic, state and ``state_dict`` format are
    torch's own: a test checks the updates are bit-identical.

    ``step`` also leaves out, while nothing listens, the wrapper torch puts around every
    optimizer's ``step`` (a profiler range and the step hooks: about 15-25 us per step, a few
    percent of a small model's step); with a step hook registered or a profiler running it
    goes through that wrapper, as torch's own classes do.
    """

    _raw_methods: ClassVar[dict[str, Callable[..., Any]]] = {}
    _guarded_methods: ClassVar[dict[str, Callable[..., Any]]] = {}

    def _direct(self) -> bool:
        differentiable = self.defaults.get("differentiable", False)
        return not torch.compiler.is_compiling() and not differentiable

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self._direct():  # torch sets ``defaults`` before adding the first group
            return self._raw_methods["add_param_group"](self, param_group)
        return super().add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._direct():
            return self._raw_methods["zero_grad"](self, set_to_none)
        return super().zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        if self._direct():
            return self._raw_methods["state_dict"](self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._direct():
            return self._raw_methods["load_state_dict"](self, state_dict)
        return super().load_state_dict(state_dict)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if self._direct():
            if _watched(self):
                return _observed_plain_step(self, closure)
            with torch.no_grad():  # what torch's guard does when differentiable=False
                return self._raw_methods["step"](self, closure)
        return _observed_guarded_step(self, closure)


def _plain_step(self: Any, closure: Callable[[], Any] | None = None) -> Any:
    with torch.no_grad():
        return self._raw_methods["step"](self, closure)


def _guarded_step(self: Any, closure: Callable[[], Any] | None = None) -> Any:
    return self._guarded_methods["step"](self, closure)


# torch's public wrapper of an optimizer step: a profiler range, then the step hooks around it
_observed_plain_step = torch.optim.Optimizer.profile_hook_step(_plain_step)
_observed_guarded_step = torch.optim.Optimizer.profile_hook_step(_guarded_step)
# torch wraps a class's ``step`` in that wrapper when it builds the first optimizer of the
# class, unless the function is marked ``hooked``; _Eager.step calls the wrapper itself
_Eager.step.hooked = True  # type: ignore[attr-defined]


def _watched(opt: torch.optim.Optimizer) -> bool:
    """Whether anything listens to ``opt.step``: a step hook of the optimizer or a global one,
    or a running profiler. torch keeps these in private attributes (read here only): the
    hooks' dicts and the profiler's flag, which its own fast paths read the same way."""
    return bool(
        opt._optimizer_step_pre_hooks
        or opt._optimizer_step_post_hooks
        or torch_optimizer._global_optimizer_pre_hooks
        or torch_optimizer._global_optimizer_post_hooks
        or torch_profiler._is_profiler_enabled
    )


_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict", "step")


@functools.cache
def eager_class(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` with :class:`_Eager` mixed in; ``cls`` itself when its methods cannot be unwrapped.

    Example:
        >>> opt = eager_class(torch.optim.SGD)([torch.zeros(2, requires_grad=True)], lr=0.1)
        >>> type(opt).__name__, isinstance(opt, torch.optim.SGD)
        ('SGD', True)
    """
    raw = {name: _raw(cls, name) for name in _GUARDED}
    if any(fn is None for fn in raw.values()):
        return cls
    step = next(vars(k)["step"] for k in cls.__mro__ if "step" in vars(k))
    if getattr(step, "hooked", False):  # already in torch's profiler wrapper: the one inside
        step = step.__wrapped__
    return type(
        cls.__name__,
        (_Eager, cls),
        {
            "_raw_methods": raw,
            "_guarded_methods": {"step": step},
            "__module__": __name__,
            "__qualname__": cls.__qualname__,
        },
    )


def _fused_ok(cls: type[torch.optim.Optimizer], params: list[nn.Parameter]) -> bool:
    if "fused" not in inspect.signature(cls.__init__).parameters or not params:
        return False
    device = params[0].device.type
    return device in {"cpu", "cuda", "mps"} and all(p.is_floating_point() for p in params)


def optimizer_config(cfg: OptimizerConfig | dict[str, Any] | str) -> OptimizerConfig:
    """``cfg`` as an :class:`OptimizerConfig`; a ConfigError naming the bad field otherwise.

    Example:
        >>> optimizer_config("sgd_nesterov").name
        'nesterov'
    """
    return section_from_spec(OptimizerConfig, cfg, "train.optimizer")


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class (with eager methods) of a registered optimizer name."""
    torch_name, _defaults = OPTIMIZER_TABLE[OPTIMIZER_NAMES.canonical(name)]
    return eager_class(getattr(torch.optim, torch_name))


def make_optimizer(
    cfg: OptimizerConfig | dict[str, Any] | str,
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]] | nn.Module,
) -> torch.optim.Optimizer:
    """The torch optimizer ``cfg`` names, over ``params``, with a fused kernel where there is one.

    Example:
        >>> opt = make_optimizer("nesterov", nn.Linear(2, 1))
        >>> opt.param_groups[0]["nesterov"], opt.param_groups[0]["momentum"]
        (True, 0.9)
    """
    cfg = optimizer_config(cfg)
    if isinstance(params, nn.Module):
        params = params.parameters()
    given: list[Any] = list(params)
    if given and isinstance(given[0], dict):  # parameter groups, each may set its own lr
        flat: list[nn.Parameter] = [p for g in given for p in g["params"]]
        chosen: list[Any] = given
    else:
        chosen = flat = [p for p in given if p.requires_grad]
    cls = optimizer_class(cfg.name)
    build: Callable[..., torch.optim.Optimizer] = cls
    kwargs = cfg.kwargs()
    fused = cfg.fused if cfg.fused is not None else _fused_ok(cls, flat)
    if fused:
        try:
            return build(chosen, **kwargs, fused=True)
        except (RuntimeError, TypeError, ValueError) as exc:  # no fused kernel for this device
            if cfg.fused:
                raise
            logger.debug("fused %s unavailable (%s); using foreach", cls.__name__, exc)
    if "foreach" in inspect.signature(cls.__init__).parameters:
        kwargs["foreach"] = True
    return build(chosen, **kwargs)


__all__ = [
    "eager_class",
    "list_optimizers",
    "make_optimizer",
    "optimizer_class",
    "optimizer_config",
]

"""``build_model``: a ``[model]`` spec, the data's shapes and the task -> an initialized module.

A ``python:module:factory`` architecture imports and runs the user's module. A config or a run
directory may come from anywhere, so that code runs only with the user's consent: ``trust_code``
(``--trust-code`` on the command line), or inside :func:`trusting_code`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from trainwell.errors import ConfigError, ModelSpecError
from trainwell.nn.architectures import MODELS, check_arch
from trainwell.nn.config import ModelConfig
from trainwell.nn.init_model import init_model_, record_scheme
from trainwell.tasks import check_task

log = logging.getLogger(__name__)

_TRUST_CODE: ContextVar[bool] = ContextVar("trainwell_trust_code", default=False)


@contextlib.contextmanager
def trusting_code(trust: bool = True) -> Iterator[None]:
    """Within the block, ``python:module:factory`` architectures may be imported and run.

    ``trusting_code(False)`` changes nothing (an outer block's consent stands), so a caller may
    pass its own ``trust_code`` argument through. The ``trainwell`` command enters this block
    for a command given ``--trust-code``.

    Example:
        >>> with trusting_code():
        ...     code_trusted()
        True
        >>> code_trusted()
        False
    """
    token = _TRUST_CODE.set(trust or _TRUST_CODE.get())
    try:
        yield
    finally:
        _TRUST_CODE.reset(token)


def code_trusted() -> bool:
    """Whether code named by a config may run here (inside :func:`trusting_code`)."""
    return _TRUST_CODE.get()


def require_trust(arch: str, trust_code: bool = False) -> None:
    """Refuse a ``python:module:factory`` architecture unless code is trusted here.

    Args:
        arch: the ``model.arch`` value.
        trust_code: the caller's consent; else that of an enclosing :func:`trusting_code`.

    Raises:
        ConfigError: ``arch`` names Python code and neither consent was given; the message
            names ``model.arch``, its value and how to consent.
    """
    if not arch.startswith("python:") or trust_code or code_trusted():
        return
    module = arch.split(":")[1] if arch.count(":") >= 2 else arch.removeprefix("python:")
    raise ConfigError(
        f"model.arch = {arch!r} would import and run the Python module {module!r}; code named "
        "in a config or a run directory runs only if you trust where it came from: add "
        "--trust-code to the command, or pass trust_code=True in Python"
    )


def head_size(task: str, n_outputs: int) -> int:
    """C logits for multiclass, one logit for binary, n outputs for regression."""
    try:
        check_task(task)
    except ConfigError as exc:  # the task vocabulary's own message, as a model spec error
        raise ModelSpecError(str(exc)) from None
    if task == "binary":
        if n_outputs not in (1, 2):
            raise ModelSpecError(f"a binary task has one output logit; got n_outputs={n_outputs}")
        return 1
    if task == "multiclass" and n_outputs < 2:
        raise ModelSpecError(f"a multiclass task needs n_outputs >= 2 classes; got {n_outputs}")
    if n_outputs < 1:
        raise ModelSpecError(f"n_outputs must be >= 1; got {n_outputs}")
    return n_outputs


def import_user_module(module_name: str, arch: str) -> Any:
    """Import the module of ``python:module:factory``: from ``sys.path``, else from the current
    folder (as ``python -m`` would), so a ``nets.py`` beside the config is found.

    Raises:
        ModelSpecError: the module is not found, or fails while importing (its error is named).
    """
    top = module_name.split(".")[0]
    cwd = os.getcwd()
    for attempt in range(2):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in {top, module_name}:  # found, but it imports something missing
                raise ModelSpecError(
                    f"model.arch = {arch!r}: module {module_name!r} failed to import: {exc}"
                ) from None
            if attempt == 0 and cwd not in sys.path:
                sys.path.append(cwd)  # kept on success: the module may import its neighbours
                importlib.invalidate_caches()
                continue
            if attempt == 1 and sys.path and sys.path[-1] == cwd:
                sys.path.pop()  # not found there either: leave sys.path as it was
            raise ModelSpecError(
                f"model.arch = {arch!r}: cannot import module {module_name!r}: no {top}.py (or "
                f"package {top}/) on the Python path or in the current folder {cwd}; run from the "
                "folder that holds it, or add its folder to PYTHONPATH"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a user's module can raise anything on import
            raise ModelSpecError(
                f"model.arch = {arch!r}: module {module_name!r} failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    raise AssertionError("unreachable")


def _python_model(
    arch: str, params: dict[str, Any], input_shape: tuple[int, ...], n_out: int, task: str
) -> nn.Module:
    _, module_name, factory_name = arch.split(":")
    module = import_user_module(module_name, arch)
    factory: Any = module
    for part in factory_name.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise ModelSpecError(
            f"model.arch = {arch!r}: module {module_name!r} has no callable {factory_name!r}"
        )
    offered = {"input_shape": tuple(input_shape), "n_outputs": n_out, "task": task}
    sig = inspect.signature(factory)
    takes_all = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in sig.parameters}
    kwargs.update(params)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(
            f"model.arch = {arch!r}: the factory refused its arguments {sorted(kwargs)}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model.arch = {arch!r}: the factory returned {type(model).__name__}, not a "
            "torch.nn.Module"
        )
    return model


def dry_run(
    model: nn.Module, input_shape: tuple[int, ...], n_out: int, batch: torch.Tensor | None = None
) -> None:
    """Run two samples through ``model`` (eval mode); a size mismatch is reported with the layer
    at fault and its input shape, and the output must be (N, n_out)."""
    x = batch[:2] if batch is not None else torch.zeros(2, *input_shape)
    names = {m: n for n, m in model.named_modules()}
    current: list[tuple[str, tuple[int, ...]]] = []

    def pre_hook(m: nn.Module, inputs: tuple[Any, ...]) -> None:
        shape = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
        current.append((names.get(m, type(m).__name__) or "model", shape))

    hooks = [
        m.register_forward_pre_hook(pre_hook) for m in model.modules() if not list(m.children())
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        where = (
            f"layer {current[-1][0]!r} with input shape {current[-1][1]}"
            if current
            else "the model"
        )
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelSpecError(
            f"the model fails on input shape {tuple(x.shape)} at {where}: {first}"
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0], n_out):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelSpecError(f"the model must output (batch, {n_out}) for this task; got {got}")


def build_model(
    cfg: ModelConfig | dict[str, Any],
    input_shape: tuple[int, ...],
    n_outputs: int,
    task: str,
    example_batch: torch.Tensor | None = None,
    trust_code: bool = False,
) -> nn.Module:
    """Build, check and initialize the model a ``[model]`` spec describes.

    Args:
        cfg: the ``[model]`` section (or a dict of it).
        input_shape: per sample: ``(n_features,)``, ``(C, H, W)`` or ``(T, F)``.
        n_outputs: classes for multiclass, 1 for binary, targets for regression.
        task: "binary", "multiclass" or "regression".
        example_batch: a batch of inputs, needed by ``init = "lsuv"``; the output layer the
            init policy starts small is found by running it (a batch of zeros of
            ``input_shape`` when it is None).
        trust_code: allow a ``python:module:factory`` architecture to import and run its
            module (also allowed inside :func:`trusting_code`).

    Returns:
        A plain ``nn.Module`` in training mode, ``init_scheme`` recorded on its layers.

    Raises:
        ModelSpecError: the spec cannot work with these shapes (the layer and sizes are named).
        ConfigError: the architecture names Python code and it is not trusted
            (:func:`require_trust`).

    Example:
        >>> net = build_model(ModelConfig(hidden=[16]), (4,), 3, "multiclass")
        >>> net(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
    """
    if isinstance(cfg, dict):
        cfg = ModelConfig.model_validate(cfg)
    input_shape = tuple(int(s) for s in input_shape)
    n_out = head_size(task, int(n_outputs))
    arch = check_arch(cfg.arch)
    if arch.startswith("python:"):
        require_trust(arch, trust_code)
        model = _python_model(arch, cfg.params, input_shape, n_out, task)
    else:
        model = MODELS.get(arch)(cfg, input_shape, n_out)
    dry_run(model, input_shape, n_out, example_batch)
    if arch.startswith("python:") and cfg.init == "auto":
        for m in model.modules():  # a user's module keeps the init its factory gave it
            if any(True for _ in m.parameters(recurse=False)):
                record_scheme(m, "factory")
    else:
        init_model_(model, cfg.init, example_batch, cfg.zero_init_residual, input_shape)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "built %s for input %s -> %d outputs: %d parameters", arch, input_shape, n_out, n_params
    )
    return model

"""A ``[model]`` as the shared trunk of several heads (``[heads]``, ``[domain]``).

Every built-in architecture ends in a linear output layer called ``head``; a ``python:``
factory's model may too. Replacing it by the identity leaves the trunk, whose features feed one
new linear head per task (and, for domain-adversarial training, a domain classifier behind a
gradient reversal layer). The whole :class:`~trainwell.nn.heads.MultiHead` is then initialized
by the ``[model] init`` policy, so that every head starts as small as a single model's output
layer (its output layers are found by data flow, one per head).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from trainwell.errors import ModelSpecError
from trainwell.nn.config import DOMAIN_HEAD, LABEL_HEAD, ModelConfig
from trainwell.nn.heads import GradientReversal, MultiHead

log = logging.getLogger(__name__)




def split_head(model: nn.Module, arch: str) -> tuple[nn.Module, int]:
    """``model`` without its linear output layer ``head`` (now the identity) and the layer's
    input width: the trunk and the width of its features."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ModelSpecError(
            f"model.arch = {arch!r} cannot be a shared trunk: several heads need the model's "
            "output layer as a torch.nn.Linear attribute named `head` (the built-in "
            "architectures have one); a python: factory may name its last layer `head`, or "
            "return a MultiHead from Python"
        )
    model.head = nn.Identity()
    return model, head.in_features


def domain_classifier(features: int, hidden: list[int]) -> nn.Module:
    """``GradientReversal -> [Linear -> ReLU] per hidden width -> Linear(1)``: one domain logit.
    The objective sets the reversal strength every step."""
    layers: list[nn.Module] = [GradientReversal(1.0)]
    width = features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def build_multihead(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    widths: dict[str, tuple[int, str]],
    example_batch: torch.Tensor | None = None,
    domain_hidden: list[int] | None = None,
    trust_code: bool = False,
) -> MultiHead:
    """A trunk built from ``cfg`` with one linear head per entry of ``widths``.

    Args:
        cfg: the ``[model]`` section: the trunk.
        input_shape: per sample.
        widths: ``{head: (n_outputs, task)}``; ``n_outputs`` as for a single model (classes,
            1 for binary, targets for regression).
        example_batch: inputs to find output layers (and for ``lsuv``).
        domain_hidden: with a list, a domain classifier head :data:`DOMAIN_HEAD` of these hidden
            widths behind a gradient reversal layer.
        trust_code: passed to :func:`~trainwell.nn.build.build_model` for ``python:`` archs.

    Returns:
        A :class:`MultiHead` giving ``{head: output}``.

    Example:
        >>> net = build_multihead(ModelConfig(hidden=[16]), (4,), {"a": (3, "multiclass"),
        ...                       "b": (1, "regression")})
        >>> {k: tuple(v.shape) for k, v in net(torch.zeros(2, 4)).items()}
        {'a': (2, 3), 'b': (2, 1)}
    """
    from trainwell.nn.build import build_model, head_size
    from trainwell.nn.init_model import init_model_, record_scheme

    first_n, first_task = next(iter(widths.values()))
    kwargs: dict[str, Any] = {"trust_code": True} if trust_code else {}
    model = build_model(cfg, input_shape, first_n, first_task, example_batch, **kwargs)
    trunk, features = split_head(model, cfg.arch)
    heads: dict[str, nn.Module] = {
        name: nn.Linear(features, head_size(task, n)) for name, (n, task) in widths.items()
    }
    if domain_hidden is not None:
        heads[DOMAIN_HEAD] = domain_classifier(features, domain_hidden)
    net = MultiHead(trunk, heads)
    if cfg.arch.startswith("python:") and cfg.init == "auto":
        for m in heads.values():  # a user's trunk keeps its factory's init; new heads get torch's
            for layer in m.modules():
                if isinstance(layer, nn.Linear):
                    record_scheme(layer, "torch default")
    else:
        shape = tuple(input_shape)
        init_model_(net, cfg.init, example_batch, cfg.zero_init_residual, shape)
    return net


__all__ = ["DOMAIN_HEAD", "LABEL_HEAD", "build_multihead", "domain_classifier", "split_head"]

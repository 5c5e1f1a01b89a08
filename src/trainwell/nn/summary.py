"""``model_summary``: each layer's output shape, parameter count and init scheme."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def model_summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per leaf layer (and per recurrent layer), in the order they run.

    Args:
        model: any module.
        input_shape: per-sample input shape; a batch of 2 zeros is run in eval mode.

    Returns:
        Rows ``{"layer", "type", "output_shape", "params", "init"}``; ``output_shape`` is per
        sample (batch dimension dropped), ``init`` the recorded ``init_scheme`` ("" if none).

    Example:
        >>> rows = model_summary(nn.Sequential(nn.Linear(4, 3)), (4,))
        >>> rows[0]["output_shape"], rows[0]["params"]
        ((3,), 15)
    """
    names = {m: n for n, m in model.named_modules()}
    rows: list[dict[str, Any]] = []
    leaves = [m for m in model.modules() if not list(m.children()) or isinstance(m, (nn.RNNBase,))]

    def hook(m: nn.Module, _inp: Any, out: Any) -> None:
        if isinstance(out, tuple):  # recurrent layers return (output, state)
            out = out[0]
        shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
        rows.append(
            {
                "layer": names.get(m) or type(m).__name__,
                "type": type(m).__name__,
                "output_shape": shape,
                "params": sum(p.numel() for p in m.parameters()),
                "init": getattr(m, "init_scheme", ""),
            }
        )

    hooks = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_summary(rows: list[dict[str, Any]], total_params: int | None = None) -> str:
    """The rows as an aligned text table, with a total line."""
    header = ("layer", "type", "output shape", "params", "init")
    body = [
        (
            r["layer"],
            r["type"],
            "x".join(map(str, r["output_shape"])) or "-",
            f"{r['params']:,}",
            r["init"] or "-",
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(4)]
    lines = []
    for line in [header, *body]:
        cells = [
            str(c).ljust(widths[i]) if i != 3 else str(c).rjust(widths[i])
            for i, c in enumerate(line[:4])
        ]
        lines.append("  ".join(cells + [str(line[4])]).rstrip())
    total = total_params if total_params is not None else sum(r["params"] for r in rows)
    lines.append(f"total parameters: {total:,}")
    return "\n".join(lines)

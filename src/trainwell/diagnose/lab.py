"""Lecture 001's activation-statistics experiment: six layers of width 4096, five inits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

# (label, activation, weight std as a function of D_in); lecture 001: W = std * randn(Din, Dout)
SETUPS: list[tuple[str, str, Any]] = [
    ("tanh, std 0.01", "tanh", lambda d: 0.01),
    ("tanh, std 0.05", "tanh", lambda d: 0.05),
    ("tanh, Xavier 1/sqrt(Din)", "tanh", lambda d: 1 / math.sqrt(d)),
    ("relu, Xavier 1/sqrt(Din)", "relu", lambda d: 1 / math.sqrt(d)),
    ("relu, Kaiming sqrt(2/Din)", "relu", lambda d: math.sqrt(2 / d)),
]


def init_stats(
    width: int = 4096,
    depth: int = 6,
    batch: int = 16,
    seed: int = 0,
    keep: bool = False,
    setups: list[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per-layer mean and std of ``x = f(x @ W)`` for each of the five setups.

    Args:
        width: units per layer (the lecture: 4096).
        depth: number of layers (the lecture: 6).
        batch: rows of unit-Gaussian input (the lecture: 16).
        seed: seeds the inputs and weights (the same inputs for every setup).
        keep: also return each layer's activations (for the histograms).
        setups: labels of the setups to run (default all five, see ``SETUPS``).

    Example:
        >>> stats = init_stats(width=256, depth=2, batch=8)
        >>> len(stats["tanh, std 0.01"])
        2
    """
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, width, generator=gen, dtype=torch.float32)
    out: dict[str, list[dict[str, Any]]] = {}
    chosen = [s for s in SETUPS if setups is None or s[0] in setups]
    if setups is not None and len(chosen) != len(setups):
        from trainwell.registry import unknown_name_message

        bad = next(s for s in setups if s not in {c[0] for c in SETUPS})
        raise ValueError(unknown_name_message("init-stats setup", bad, [c[0] for c in SETUPS]))
    for label, act, std in chosen:
        g = torch.Generator().manual_seed(seed + 1)
        x = x0
        layers = []
        for _ in range(depth):
            W = torch.randn(width, width, generator=g, dtype=torch.float32) * std(width)
            x = torch.tanh(x @ W) if act == "tanh" else torch.relu(x @ W)
            entry: dict[str, Any] = {"mean": x.mean().item(), "std": x.std(unbiased=False).item()}
            if keep:
                entry["values"] = x.flatten().float()
            layers.append(entry)
        out[label] = layers
    return out


def plot_init_stats(results: dict[str, list[dict[str, Any]]], path: str | Path) -> Path:
    """One row of per-layer histograms per setup (recomputes the values when not kept)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(results.values()))
    if "values" not in first[0]:
        raise ValueError("plot_init_stats needs init_stats(..., keep=True)")
    rows, cols = len(results), len(first)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.6 * rows), squeeze=False)
    for r, (label, layers) in enumerate(results.items()):
        for c, s in enumerate(layers):
            ax = axes[r][c]
            ax.hist(s["values"].numpy(), bins=40, color="tab:blue")
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            ax.set_title(f"layer {c + 1}: std {s['std']:.2f}", fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

"""The test samples the model gets most wrong: saved at the end of a run, shown by its report.

At the end of a run, :func:`save_worst_examples` ranks the test samples by their loss under the
kept weights (:func:`per_sample_loss`: the cross-entropy of the predicted probabilities for a
classification, the squared error averaged over the outputs for a regression) and writes the
:data:`TOP_K` worst to ``worst_examples.npz``: their position in the test split (``index``),
their row in the source (``row``), their ``loss`` and the model's input ``x`` (an image
``(C, H, W)`` or a table's row, after preprocessing). Plain NumPy arrays, read back with
``allow_pickle=False``. The report shows images as a grid and rows as a table, with the true
and predicted labels from ``predictions.npz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.report.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP_K = 12
FILE = "worst_examples.npz"
EPS = 1e-12  # the smallest probability a cross-entropy takes the log of


def per_sample_loss(arrays: dict[str, Any], task: str | None) -> Any:
    """One loss per test sample from ``predictions.npz``'s arrays (None without them).

    Classification (``proba`` present): ``-log p(true class)``; regression: the squared error
    averaged over the outputs, in the target's units.
    """
    import numpy as np

    y_true = arrays.get("y_true")
    if y_true is None or len(y_true) == 0:
        return None
    if "proba" in arrays and task != "regression":
        proba = np.asarray(arrays["proba"], dtype=np.float64)
        idx = np.asarray(y_true, dtype=np.float64).reshape(len(proba)).astype(np.int64)
        return -np.log(np.clip(proba[np.arange(len(proba)), idx], EPS, 1.0))
    y_pred = arrays.get("y_pred")
    if y_pred is None:
        return None
    n = len(y_true)
    err = (np.asarray(y_true, dtype=np.float64).reshape(n, -1)
           - np.asarray(y_pred, dtype=np.float64).reshape(n, -1))
    return (err ** 2).mean(axis=1)


def worst_indices(loss: Any, k: int = TOP_K) -> Any:
    """Positions of the ``k`` largest losses, largest first (ties: the earlier sample first)."""
    import numpy as np

    order = np.argsort(-np.asarray(loss), kind="stable")
    return order[:k]


def save_worst_examples(run_dir: str | Path, split: Any, arrays: dict[str, Any],
                        task: str | None, k: int = TOP_K) -> Path | None:
    """Write ``worst_examples.npz`` for the test ``split`` and its predictions ``arrays``.

    ``split``: a :class:`~trainwell.data.prepared_data.Split` (``X`` a tensor, or a dataset
    whose items are ``(x, y)``; ``index``: each row's position in the source). Returns the
    path, or None when there is nothing to rank.
    """
    import io

    import numpy as np
    import torch

    from trainwell.runs import write_bytes_atomic

    loss = per_sample_loss(arrays, task)
    if loss is None or len(loss) != len(split):
        return None
    idx = worst_indices(loss, k)
    X = split.X
    if isinstance(X, torch.Tensor):
        x = X[torch.as_tensor(idx, dtype=torch.long)]
    else:
        x = torch.stack([torch.as_tensor(X[int(i)][0]) for i in idx])
    rows = np.asarray(split.index)
    out = {"index": idx.astype(np.int64), "loss": np.asarray(loss)[idx].astype(np.float64),
           "x": x.detach().cpu().float().numpy(),
           "row": rows[idx].astype(np.int64) if len(rows) == len(loss) else idx.astype(np.int64)}
    buf = io.BytesIO()
    np.savez(buf, **out)
    return write_bytes_atomic(Path(run_dir) / FILE, buf.getvalue())


def examples_problem(arrays: dict[str, Any], n_test: int) -> str | None:
    """What keeps a ``worst_examples.npz`` from being shown, or None."""
    import numpy as np

    missing = [key for key in ("index", "loss", "x") if key not in arrays]
    if missing:
        return f"it lacks {', '.join(missing)}"
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            return f"{key} holds {a.dtype} values, not numbers"
    index, x = arrays["index"], arrays["x"]
    if index.ndim != 1 or len(arrays["loss"]) != len(index) or len(x) != len(index):
        return "its index, loss and x have different numbers of rows"
    if x.ndim not in (2, 3, 4):
        return f"x has shape {x.shape}; rows (k, features) or images (k, C, H, W)"
    if len(index) and (index.min() < 0 or index.max() >= n_test
                       or (index != np.round(index)).any()):
        return f"its index should hold test positions 0 to {n_test - 1}"
    return None


def _image(x: Any) -> tuple[Any, str | None]:
    """An input image ``(C, H, W)`` (or ``(H, W)``) scaled to [0, 1] for display, and its
    colormap (gray for one channel)."""
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a, (None if a.ndim == 3 else "gray")


def images_figure(xs: Any, titles: Sequence[str]) -> Figure:
    """The worst images in a grid of up to 4 columns, each titled with its labels and loss."""
    n = len(xs)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = new_figure(1.6 * cols + 0.2, 1.95 * rows + 0.1, rows, cols, left=0.1,
                           right=0.1, bottom=0.05, top=0.45, wgap=0.15, hgap=0.55)
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, x, title in zip(flat, xs, titles, strict=False):
        img, cmap = _image(x)
        ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.text(0.5, 1.03, title, transform=ax.transAxes, ha="center", va="bottom", fontsize=8.5)
        ax.set_axis_off()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig

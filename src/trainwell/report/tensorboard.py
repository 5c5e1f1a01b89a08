"""TensorBoard: a trainer callback writing each epoch's scalars and weight/gradient histograms.

Scalars come from the epoch's record (the same numbers as ``metrics.jsonl``), tagged
``loss/train``, ``loss/val``, ``accuracy/val``, ``lr`` ...; histograms of every parameter and of
its gradient on the last batch of the epoch go under ``weights/`` and ``grads/``. Events are
written to ``<run_dir>/tensorboard``; view them with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

INSTALL_HINT = ("log.tensorboard = true needs the tensorboard package, which is not installed; "
                "install it with `pip install tensorboard` "
                "(or `pip install 'trainwell[tensorboard]'`), "
                "or set log.tensorboard = false")
SKIP = {"epoch", "step"}


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard() -> None:
    """Refuse ``log.tensorboard = true`` up front when the package is missing.

    Raises:
        ConfigError: the message says how to install it.
    """
    if not tensorboard_available():
        raise ConfigError(INSTALL_HINT)


def scalar_tag(key: str) -> str:
    """``"val_accuracy"`` -> ``"accuracy/val"``; ``"epoch_time"`` -> ``"time/epoch"``."""
    for split in ("train", "val", "test"):
        if key.startswith(split + "_"):
            return f"{key[len(split) + 1:]}/{split}"
    if key == "epoch_time":
        return "time/epoch"
    if key == "time":
        return "time/total"
    return key


class TensorBoardLogger:
    """Trainer callback that mirrors training into TensorBoard.

    Args:
        run_dir: the run directory; events go to ``run_dir/tensorboard``.
        histograms: also write weight and gradient histograms each epoch.

    Raises:
        ConfigError: if the tensorboard package is not installed (the message says how to).

    Example:
        >>> trainer = Trainer(model, callbacks=[TensorBoardLogger("runs/iris")])  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, histograms: bool = True) -> None:
        require_tensorboard()
        self.log_dir = Path(run_dir) / "tensorboard"
        self.histograms = histograms
        self.writer: Any = None
        self._grads: dict[str, torch.Tensor] = {}

    def before_fit(self, trainer: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run drops the events logged after its checkpoint, as metrics.jsonl does
        purge = int(trainer.epoch) + 1 if getattr(trainer, "epoch", 0) else None
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge)

    def after_backward(self, trainer: Any) -> None:
        if not self.histograms:
            return
        last = getattr(trainer, "batches_per_epoch", trainer.steps_per_epoch) - 1
        if trainer.batch_index != last:
            return  # gradients of the epoch's last batch only: one copy per epoch
        self._grads = {n: p.grad.detach().float().cpu().clone()
                       for n, p in trainer.model.named_parameters() if p.grad is not None}

    def after_epoch(self, trainer: Any) -> None:
        if self.writer is None:
            self.before_fit(trainer)
        record = trainer.history[-1]
        epoch = int(record.get("epoch", trainer.epoch))
        for key, value in record.items():
            if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(scalar_tag(key), float(value), epoch)
        if self.histograms:
            for name, param in trainer.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
            for name, grad in self._grads.items():
                self.writer.add_histogram(f"grads/{name}", grad, epoch)
            self._grads = {}
        self.writer.flush()

    def end(self, trainer: Any) -> None:  # also after a divergence or an error
        if self.writer is not None:
            self.writer.close()
            self.writer = None

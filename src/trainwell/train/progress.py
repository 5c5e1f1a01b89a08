"""Progress display: a bar with the running loss on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from trainwell.train.callbacks import Callback

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

_SHORT = {"accuracy": "acc", "f1_macro": "f1", "top5_accuracy": "top5"}


def epoch_line(record: dict[str, Any]) -> str:
    """``epoch 12: train loss 0.0412, val loss 0.0871, val acc 0.972``."""
    parts = [f"train loss {record['train_loss']:.4g}"]
    for key, value in record.items():
        if key.startswith("val_") and isinstance(value, float):
            name = key[4:]
            parts.append(f"val {_SHORT.get(name, name).replace('_', ' ')} {value:.4g}")
    parts.append(f"lr {record['lr']:.3g}")
    return f"epoch {record['epoch']}: " + ", ".join(parts)


class EpochLines(Callback):
    """Print one line per epoch (CI logs, ``--quiet``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def after_epoch(self, trainer: Trainer) -> None:
        print(epoch_line(trainer.history[-1]), file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A tqdm bar over the steps of each epoch, showing the running loss (refreshed <= 5x/s)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.bar: Any = None
        self._last = 0.0
        self._done = 0
        self._first = 0

    def before_epoch(self, trainer: Trainer) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {trainer.epoch}/{trainer.epochs}",
            leave=False,
            file=self.stream or sys.stderr,
            dynamic_ncols=True,
        )
        self._done = 0
        self._first = trainer.step  # the bar counts optimizer steps (accumulate: k batches each)

    def after_batch(self, trainer: Trainer) -> None:
        now = time.monotonic()
        if now - self._last > 0.2:  # a sync for the loss value, at most five times a second
            self._last = now
            done = trainer.step - self._first
            self.bar.update(done - self._done)
            self._done = done
            if trainer.loss is not None:
                self.bar.set_postfix(loss=f"{float(trainer.loss.detach()):.4g}", refresh=False)

    def after_epoch(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(epoch_line(trainer.history[-1]), file=self.stream or sys.stderr, flush=True)

    def end(self, trainer: Trainer) -> None:
        if self.bar is not None:  # an error or a stop mid-epoch leaves the bar open
            self.bar.close()
            self.bar = None


def default_progress(quiet: bool = False) -> Callback:
    """A bar on a terminal; plain epoch lines when not a terminal or when ``quiet``."""
    if not quiet and sys.stderr.isatty():
        return ProgressBar()
    return EpochLines()


__all__ = ["EpochLines", "ProgressBar", "default_progress", "epoch_line"]

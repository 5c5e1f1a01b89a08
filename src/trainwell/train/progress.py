"""Progress display: a bar with the running loss on a terminal, one line per epoch otherwise.

The epoch lines go through the logger ``trainwell.progress`` at level INFO. Its own handler
(installed here, once) writes each line, bare, to the stream the callback names: standard
output for :class:`EpochLines`, standard error for :class:`ProgressBar`. The logger does not
pass the lines on to the root logger's handlers, so a program's own ``logging.basicConfig``
does not print them twice. To silence the lines, raise the logger's level
(``logging.getLogger("trainwell.progress").setLevel(logging.WARNING)``, what ``trainwell -q``
does); to also keep them elsewhere, add a handler to that logger.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from trainwell.train.callbacks import Callback

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

_SHORT = {"accuracy": "acc", "f1_macro": "f1", "top5_accuracy": "top5"}

#: the logger of the epoch lines
progress_logger = logging.getLogger("trainwell.progress")


class LineHandler(logging.Handler):
    """Writes a record's message, bare, to the stream the record carries (``record.stream``;
    standard error when it carries none), and flushes it."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = getattr(record, "stream", None) or sys.stderr
        try:
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except Exception:  # a closed stream: logging's own report, as for any handler
            self.handleError(record)


if not any(isinstance(h, LineHandler) for h in progress_logger.handlers):
    progress_logger.addHandler(LineHandler())
    progress_logger.propagate = False
    if progress_logger.level == logging.NOTSET:
        progress_logger.setLevel(logging.INFO)


def log_line(line: str, stream: IO[str]) -> None:
    """Log ``line`` on ``trainwell.progress``, for its handler to write to ``stream``."""
    progress_logger.info(line, extra={"stream": stream})


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
    """Print one line per epoch on standard output (CI logs, ``fit(quiet=True)``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def after_epoch(self, trainer: Trainer) -> None:
        log_line(epoch_line(trainer.history[-1]), self.stream or sys.stdout)


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
        log_line(epoch_line(trainer.history[-1]), self.stream or sys.stderr)

    def end(self, trainer: Trainer) -> None:
        if self.bar is not None:  # an error or a stop mid-epoch leaves the bar open
            self.bar.close()
            self.bar = None


def default_progress(quiet: bool = False) -> Callback:
    """A bar on a terminal; plain epoch lines when not a terminal or when ``quiet``."""
    if not quiet and sys.stderr.isatty():
        return ProgressBar()
    return EpochLines()


__all__ = ["EpochLines", "LineHandler", "ProgressBar", "default_progress", "epoch_line",
           "log_line", "progress_logger"]

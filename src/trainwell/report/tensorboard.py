"""TensorBoard: a trainer callback writing each epoch's scalars and weight/gradient histograms,
the loss of every optimizer step, the doctor's layer statistics and the run's hyperparameters.

Scalars come from the epoch's record (the same numbers as ``metrics.jsonl``), tagged
``loss/train``, ``loss/val``, ``accuracy/val``, ``lr`` ...; histograms of every parameter and of
its gradient on the last batch of the epoch go under ``weights/`` and ``grads/``. With the
doctor's monitor, its per-layer statistics of the epoch (``stats.jsonl``) go under
``layers.<statistic>/<layer>``. Events are written to ``<run_dir>/tensorboard``; view them with
``tensorboard --logdir runs``.

The training loss by optimizer step (``loss/train_step``, x = the step: the mean over each
``step_every`` steps, 10 by default) goes to its own folder, ``<run_dir>/tensorboard/steps``,
so that the epoch scalars and the step scalars are purged on their own scales when a run
resumes. The step losses stay on the device during the epoch and are read in one transfer at
its end: no synchronisation per step. Writing one scalar costs some 70-200 us of CPU (the event
file's checksums are computed in Python), a few percent of a small model's step; one scalar
per 10 steps keeps that under a percent.

At the end of the run (:meth:`TensorBoardLogger.after_run`), the flattened config and the final
metrics (``final/test_<metric>``, ``final/best_<metric>``) are written through the HParams
plugin, so that TensorBoard's HPARAMS tab lists every run of a ``--logdir``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
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
        monitor: the doctor's :class:`~trainwell.diagnose.monitor.TrainingMonitor` of the same
            fit, placed before this logger among the callbacks: its layer statistics of each
            epoch are written as scalars.
        step_every: write the mean training loss of every this many optimizer steps (1:
            every step's loss; 0: none).

    Raises:
        ConfigError: if the tensorboard package is not installed (the message says how to).

    Example:
        >>> trainer = Trainer(model, callbacks=[TensorBoardLogger("runs/iris")])  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, histograms: bool = True, monitor: Any = None,
                 step_every: int = 10) -> None:
        require_tensorboard()
        if isinstance(step_every, bool) or not isinstance(step_every, int) or step_every < 0:
            raise ConfigError(f"TensorBoardLogger step_every must be a whole number >= 0 "
                              f"(0: no step losses); got {step_every!r}")
        self.log_dir = Path(run_dir) / "tensorboard"
        self.histograms = histograms
        self.monitor = monitor
        self.step_every = step_every
        self.writer: Any = None
        self.step_writer: Any = None
        self._grads: dict[str, torch.Tensor] = {}
        self._losses: list[torch.Tensor] = []
        self._first_step = 1  # the step of self._losses[0]

    def before_fit(self, trainer: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run drops the events logged after its checkpoint, as metrics.jsonl does
        # (a run started again from its config, all of them)
        epoch, step = int(getattr(trainer, "epoch", 0)), int(getattr(trainer, "step", 0))
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=epoch + 1)
        if self.step_every:
            self._first_step = step + 1
            self.step_writer = SummaryWriter(log_dir=str(self.log_dir / "steps"),
                                             purge_step=step + 1)
        self._losses = []

    def after_step(self, trainer: Any) -> None:
        loss = getattr(trainer, "loss", None)
        if self.step_every and loss is not None:
            self._losses.append(loss.detach())  # stays on the device until the epoch's end

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
        self._write_layer_stats(epoch)
        self.writer.flush()
        self._write_step_losses()

    def _write_step_losses(self, partial: bool = False) -> None:
        """The mean loss of each window of ``step_every`` steps that ends at a multiple of
        ``step_every`` (and, with ``partial``, of the window the fit ended in), at the window's
        last step; an unfinished window waits for the next epoch. A resumed run's first
        window holds the steps after its checkpoint only."""
        if self.step_writer is None or not self._losses:
            return
        import torch

        n, step = self.step_every, self._first_step
        last = step + len(self._losses) - 1
        end = last if partial else last // n * n
        count = end - step + 1
        if count <= 0:
            return
        values = torch.stack([v.float().reshape(()) for v in self._losses[:count]]).cpu()
        i = 0
        while i < count:
            window_end = min((step - 1) // n * n + n, end)
            k = window_end - step + 1
            self.step_writer.add_scalar("loss/train_step", float(values[i:i + k].mean()),
                                        window_end)
            i, step = i + k, step + k
        self.step_writer.flush()
        self._losses = self._losses[count:]
        self._first_step = step

    def _write_layer_stats(self, epoch: int) -> None:
        """The doctor's monitor's record of this epoch: one scalar per layer and statistic."""
        records = getattr(self.monitor, "records", None)
        if not records or records[-1].get("epoch") != epoch:
            return
        for layer, stats in records[-1].get("layers", {}).items():
            for key, value in stats.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"layers.{key}/{layer}", float(value), epoch)

    def after_run(self, run: Any) -> None:
        """Once the results are known: the hyperparameters and final metrics (HPARAMS tab)."""
        write_hparams(self.log_dir, run.config.to_dict(), run.results, run.status)

    def end(self, trainer: Any) -> None:  # also after a divergence or an error
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.step_writer is not None:
            self._write_step_losses(partial=True)  # the last window, however short
            self.step_writer.close()
            self.step_writer = None


def hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config (``train.optimizer.lr`` ...) as HParams values: numbers, strings
    and booleans as they are, lists as their JSON text."""
    from trainwell.report.rundata import flatten

    out: dict[str, Any] = {}
    for key, value in flatten(config).items():
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is not None:
            out[key] = json.dumps(value)
    return out


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``final/test_<metric>`` and ``final/best_<metric>`` of ``results.json``'s numbers."""
    out: dict[str, float] = {}
    for key, value in (results.get("test") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"final/{key}"] = float(value)
    for key, value in (results.get("best") or {}).items():
        if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"final/best_{key}"] = float(value)
    return out


def write_hparams(log_dir: str | Path, config: dict[str, Any], results: dict[str, Any],
                  status: str = "completed") -> None:
    """Write the HParams plugin's summaries for one run into ``log_dir``: the experiment (its
    hyperparameters and metric tags), the session with the run's values and its end (a
    success when ``status`` is ``"completed"``, else a failure: a diverged run), and each
    final metric as a scalar at step 0 (the HPARAMS tab reads a metric's last value).

    ``SummaryWriter.add_hparams`` would write them to a new sub-folder named after the clock,
    a second run in TensorBoard's list; this writes them beside the run's own events.
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    metrics = final_metrics(results)
    experiment, start, end = hparams(hparam_values(config), metrics)
    if status != "completed":  # torch writes every session's end as a success
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

        meta = end.value[0].metadata.plugin_data
        data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
        data.session_end_info.status = api_pb2.STATUS_FAILURE
        meta.content = data.SerializeToString()
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, 0)

"""``report.html`` refreshed while a run trains, so that a long run can be watched.

:class:`LiveReport` is a trainer callback. At the end of an epoch it rewrites the run's report
(atomically: a browser never reads half a page) when ``every`` epochs have passed or
``interval_s`` seconds have gone by since the last refresh, but only while the time spent on
refreshes stays within ``budget`` (5%) of the time the run has trained. The live page says
"training, epoch k of n, updated at ..." and reloads itself (``<meta http-equiv="refresh">``);
the report written at the end of the run has neither. A run that ends on an error or an
interruption gets a last page that says so and no longer reloads.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

logger = logging.getLogger(__name__)

BUDGET = 0.05  # the largest share of the training time that refreshes may take
FIRST_COST_S = 0.5  # what the first refresh is assumed to cost, before one was measured


@dataclass(frozen=True)
class LiveState:
    """What a report written during training says about the run's progress."""

    epoch: int
    epochs: int
    updated: str  # UTC time, ISO 8601, seconds
    stopped: str | None = None  # how a run that ended early ended (then the page is final)
    reload_s: int = 30

    def banner(self) -> str:
        when = self.updated.replace("T", " ").replace("+00:00", " UTC")
        if self.stopped:
            return (f"training stopped ({self.stopped}) at epoch {self.epoch} of {self.epochs}; "
                    f"updated at {when}")
        return f"training, epoch {self.epoch} of {self.epochs}, updated at {when}"


def now_utc() -> str:
    return _dt.datetime.now(tz=_dt.UTC).replace(microsecond=0).isoformat()


class LiveReport:
    """Rewrite ``run_dir/report.html`` during training (see the module's docstring); a trainer
    callback (events ``before_fit``, ``after_epoch``, ``end``).

    Args:
        run_dir: the run directory.
        every: refresh every this many epochs (0: never during training).
        interval_s: refresh at an epoch's end once this many seconds passed since the last one.
        budget: the largest share of the elapsed training time refreshes may take.
    """

    def __init__(self, run_dir: str | Path, every: int = 10, interval_s: float = 60.0,
                 budget: float = BUDGET) -> None:
        self.run_dir = Path(run_dir)
        self.every, self.interval_s, self.budget = every, interval_s, budget
        self.spent = 0.0  # seconds spent on refreshes
        self.last_cost = FIRST_COST_S
        self.refreshes = 0
        self._start = self._last = time.monotonic()

    def before_fit(self, trainer: Trainer) -> None:
        self._start = self._last = time.monotonic()

    def due(self, trainer: Trainer, now: float) -> bool:
        """Whether the epoch that just ended gets a refresh."""
        if not self.every or trainer.epoch >= trainer.epochs:
            return False  # the last epoch's report is the final one, written at the end
        if trainer.stopped_early or trainer.stop_training:
            return False
        wanted = trainer.epoch % self.every == 0 or now - self._last >= self.interval_s
        affordable = self.spent + self.last_cost <= self.budget * (now - self._start)
        return wanted and affordable

    def after_epoch(self, trainer: Trainer) -> None:
        now = time.monotonic()
        if self.due(trainer, now):
            self.write(LiveState(trainer.epoch, trainer.epochs, now_utc(),
                                 reload_s=reload_seconds(self.interval_s)))

    def end(self, trainer: Trainer) -> None:
        """A run that ended on an error or an interruption: its last page stops reloading."""
        if self.refreshes and trainer.error is not None:
            self.write(LiveState(trainer.epoch, trainer.epochs, now_utc(),
                                 stopped=str(trainer.outcome)))

    def write(self, state: LiveState) -> None:
        from trainwell.report.run_report import write_run_report

        t0 = time.monotonic()
        write_run_report(self.run_dir, live=state)
        self.last_cost = time.monotonic() - t0
        self.spent += self.last_cost
        self._last = time.monotonic()
        self.refreshes += 1
        logger.debug("refreshed %s in %.2f s", self.run_dir / "report.html", self.last_cost)


def reload_seconds(interval_s: float) -> int:
    """How often an open live page reloads: the refresh interval, within 10 s and 5 min."""
    return int(min(max(interval_s, 10.0), 300.0))

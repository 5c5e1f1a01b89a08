"""Snapshot ensembles (Huang et al. 2017, "train 1, get M for free"): one run whose learning
rate follows ``M`` cosine cycles (schedule ``cosine_restarts``, each cycle starting again at the
initial LR), and a copy of the weights at the end of each cycle, where the LR is lowest and the
model sits in a minimum; the M snapshots are then the members of an ensemble.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainwell.errors import ConfigError
from trainwell.runs import write_safetensors_atomic

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

SNAPSHOTS_DIR = "snapshots"


def cycle_ends(epochs: int, cycles: int) -> list[int]:
    """The epochs that end each of ``cycles`` equal cycles of an ``epochs``-epoch run.

    Raises:
        ConfigError: ``epochs`` is not a multiple of ``cycles``.
    """
    if cycles < 1 or epochs % cycles:
        raise ConfigError(
            f"a snapshot ensemble of {cycles} members needs train.epochs to be a multiple of "
            f"{cycles} (one cosine cycle per member); train.epochs is {epochs}"
        )
    length = epochs // cycles
    return [length * (k + 1) for k in range(cycles)]


def snapshot_path(run_dir: Path, k: int) -> Path:
    """Where the weights at the end of cycle ``k`` (0-based) are kept."""
    return Path(run_dir) / SNAPSHOTS_DIR / f"cycle-{k}.safetensors"


class SnapshotSaver:
    """A trainer callback that keeps the weights at the end of each cosine cycle.

    The files are written whole (atomically) after their epoch, before that epoch's checkpoint;
    a resumed run that repeats the epoch writes the same weights again.
    """

    def __init__(self, run_dir: Path, epochs: int, cycles: int) -> None:
        self.run_dir = Path(run_dir)
        self.ends = cycle_ends(epochs, cycles)

    def after_epoch(self, trainer: Trainer) -> None:
        if trainer.epoch in self.ends:
            k = self.ends.index(trainer.epoch)
            state = {name: t.detach().cpu() for name, t in trainer.model.state_dict().items()}
            path = snapshot_path(self.run_dir, k)
            path.parent.mkdir(exist_ok=True)
            write_safetensors_atomic(path, state)


__all__ = ["SNAPSHOTS_DIR", "SnapshotSaver", "cycle_ends", "snapshot_path"]

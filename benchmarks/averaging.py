"""Weight averaging: one model against its EMA and its SWA, on digits.

The config of ``trainwell demo`` (digits, standardized, stratified 70/15/15 split, BatchNorm
MLP, Adam lr 1e-3, batch 64, one warmup epoch) with hidden [128, 128], ``--epochs`` epochs, no
early stopping (the best snapshot by val loss is still kept: among averaged weights for EMA and
SWA), and per schedule three runs that differ only in ``[train] average``: none, ``ema`` (the
default decay) and ``swa`` (from 0.75 of the epochs, SWA learning rate 5e-4). Test accuracy and
log-loss (the cross-entropy of ``results.json``) of the kept weights on the 270 test images.

    nice python benchmarks/averaging.py --seeds 3 --epochs 15 30 --schedules cosine constant

Each table shows means over the seeds, the ratio of the log-loss to the single model's, and in
how many seeds the method's log-loss was lower.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
from typing import Any

import trainwell

BASE: dict[str, Any] = {
    "data": {
        "source": "builtin:digits",
        "split": {"val": 0.15, "test": 0.15, "stratify": True},
        "preprocess": ["standardize"],
    },
    "model": {"arch": "mlp", "hidden": [128, 128], "norm": "batch"},
    "train": {
        "optimizer": {"name": "adam", "lr": 1e-3},
        "batch_size": 64,
        "early_stopping": {"patience": None},
        "checkpoint_every": 0,
    },
    "log": {"report": False},
}
METHODS: dict[str, Any] = {
    "single": None,
    "ema": "ema",
    "swa": {"name": "swa", "lr": 5e-4},
}


def one_run(root: str, method: str, schedule: str, epochs: int, seed: int) -> tuple[float, float]:
    """Test accuracy and log-loss of one run."""
    cfg = copy.deepcopy(BASE)
    cfg.update(seed=seed, runs_dir=root)
    cfg["train"].update(epochs=epochs, schedule={"name": schedule, "warmup": 1})
    if METHODS[method] is not None:
        cfg["train"]["average"] = METHODS[method]
    run = trainwell.fit(cfg, name=f"{method}-{schedule}-{epochs}-{seed}", quiet=True)
    test = run.results["test"]
    return float(test["test_accuracy"]), float(test["test_loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs="+", default=[15, 30])
    parser.add_argument("--schedules", nargs="+", default=["cosine", "constant"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    root = tempfile.mkdtemp(prefix="trainwell-averaging-")
    for schedule in args.schedules:
        for epochs in args.epochs:
            results = {
                m: [one_run(root, m, schedule, epochs, s) for s in range(args.seeds)]
                for m in METHODS
            }
            single = results["single"]
            print(f"\n{epochs} epochs, {schedule} schedule, seeds 0-{args.seeds - 1}")
            print(f"{'method':8s} {'accuracy':>9s} {'log-loss':>9s} {'ratio':>6s} {'lower':>6s}")
            for m, rows in results.items():
                acc = statistics.mean(r[0] for r in rows)
                loss = statistics.mean(r[1] for r in rows)
                ratio = loss / statistics.mean(r[1] for r in single)
                lower = sum(r[1] < s[1] for r, s in zip(rows, single, strict=True))
                print(f"{m:8s} {acc:9.2%} {loss:9.4f} {ratio:6.2f} {lower:3d}/{args.seeds}")


if __name__ == "__main__":
    main()

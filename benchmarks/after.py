"""After training: what averaging models buys on test (issue 13), one table per part.

Ensembles (lecture 002: "train multiple independent models; at test time average their
results"): for each seed s, one config trained as

* a single model (seed s; it is member 0 of the ensemble below, so no second run is needed),
* a 5-member ensemble (seeds s .. s+4, the same data split: ``data.seed = s``; the mean of
  their probabilities), which costs 5 times the single model's epochs,
* a snapshot ensemble (Huang et al. 2017): one run of the same epochs as the single model with
  4 cosine cycles (``cosine_restarts``), its 4 end-of-cycle snapshots averaged,

and scored on the test split: accuracy, log-loss and expected calibration error (15 bins).
Weight averaging (EMA and SWA, ``[train.average]``) gets its rows in the same table, at the
single model's epochs (see ``WEIGHT_AVERAGING`` below).

    python benchmarks/after.py --seeds 3     # builtin:digits, MLP 256 + dropout 0.2, 40 epochs
    python benchmarks/after.py --source builtin:mnist_sample --epochs 20   # the 28x28 set
    python benchmarks/after.py --quick               # a smoke run (tests/after)

Every run uses one intra-op thread. The table shows medians over the seeds, the ratio to the
single model, and in how many seeds each method's log-loss beat the single model's (the
target: the ensemble in every seed).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import trainwell as tw

METRICS = ("accuracy", "log_loss", "ece")
#: rows of single runs with weight averaging: (row name, changes to [train]), e.g.
#: ("EMA", {"average": {"name": "ema"}}) and ("SWA", {"average": {"name": "swa"}}) once the
#: [train.average] section is part of the config
WEIGHT_AVERAGING: list[tuple[str, dict[str, Any]]] = []


def base_config(args: argparse.Namespace, seed: int, runs: Path) -> dict[str, Any]:
    model: dict[str, Any] = {"arch": args.arch}
    if args.hidden:
        model["hidden"] = args.hidden
    if args.dropout:
        model["dropout"] = args.dropout
    if args.channels:
        model["channels"] = args.channels
    return {
        "seed": seed,
        "runs_dir": str(runs),
        "data": {"source": args.source},
        "model": model,
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "threads": 1,
                  "optimizer": {"name": "adam", "lr": args.lr},
                  "early_stopping": {"patience": None}},  # 40 epochs; the best-val weights
        "log": {"report": False},
    }


def one_seed(args: argparse.Namespace, seed: int, runs: Path) -> dict[str, dict[str, float]]:
    cfg = base_config(args, seed, runs)
    ens = tw.ensemble({**cfg, "ensemble": {"members": args.members, "jobs": args.jobs}},
                      name=f"ens-{seed}")
    rows = {"single model": {k: ens.results["members"][0][k] for k in METRICS},
            f"{args.members}-member ensemble": ens.results["ensemble"],
            "members' mean": ens.results["members_mean"]}
    snap = tw.ensemble(cfg, snapshot=args.snapshots, name=f"snap-{seed}")
    rows[f"snapshot ensemble ({args.snapshots})"] = snap.results["ensemble"]
    for name, change in WEIGHT_AVERAGING:
        run = tw.fit({**cfg, "train": {**cfg["train"], **change}}, name=f"{name}-{seed}",
                     quiet=True)
        rows[name] = _scores_of_run(run.run_dir)  # from its test predictions, as the ensembles
    return rows


def _scores_of_run(run_dir: Path) -> dict[str, float]:
    import numpy as np

    from trainwell.after.calibration import accuracy, expected_calibration_error, log_loss

    with np.load(run_dir / "predictions.npz") as z:
        p, y = z["proba"], z["y_true"]
    return {"accuracy": accuracy(p, y), "log_loss": log_loss(p, y),
            "ece": expected_calibration_error(p, y)}


def table(per_seed: list[dict[str, dict[str, float]]]) -> str:
    names = list(per_seed[0])
    seeds = len(per_seed)

    def med(name: str, metric: str) -> float:
        return statistics.median(r[name][metric] for r in per_seed)

    head = (f"{'method':<26} | {'accuracy':>8} {'ratio':>6} | {'log-loss':>8} {'ratio':>6} | "
            f"{'ECE':>6} {'ratio':>6} | {'log-loss wins':>13}")
    lines = [head, "-" * len(head)]
    base = "single model"
    for name in names:
        cells = []
        for metric in METRICS:
            v, b = med(name, metric), med(base, metric)
            cells.append(f"{v:>8.4f} {v / b if b else float('nan'):>6.3f}")
        wins = sum(r[name]["log_loss"] < r[base]["log_loss"] for r in per_seed)
        won = "" if name == base else f"{wins}/{seeds}"
        lines.append(f"{name:<26} | " + " | ".join(cells) + f" | {won:>13}")
    lines.append("per seed log-loss: " + "; ".join(
        f"{name} " + " ".join(f"{r[name]['log_loss']:.4f}" for r in per_seed)
        for name in names if name != "members' mean"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--source", default="builtin:digits")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--hidden", type=int, nargs="*", default=[256])
    p.add_argument("--channels", type=int, nargs="*", default=None, help="cnn: conv channels")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--snapshots", type=int, default=4)
    p.add_argument("--jobs", type=int, default=1, help="members trained at once")
    p.add_argument("--quick", action="store_true",
                   help="one seed, 5 epochs, 3 members and 3 snapshots: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.members, args.snapshots = 1, 6, 3, 3
    if args.epochs % args.snapshots:
        p.error(f"--epochs {args.epochs} must be a multiple of --snapshots {args.snapshots}")
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        per_seed = [one_seed(args, seed, Path(tmp) / "runs") for seed in range(args.seeds)]
    print(f"\nEnsembles on {args.source} ({args.arch}, {args.epochs} epochs per model), test "
          f"split, median of {args.seeds} seeds; torch {torch.__version__}, 1 thread")
    print(table(per_seed))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return {"per_seed": per_seed}


if __name__ == "__main__":
    main()

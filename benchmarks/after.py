"""After training: what averaging models buys on test (issue 13), one table per part.

Ensembles (lecture 002: "train multiple independent models; at test time average their
results"): for each seed s, one config trained as

* a single model (seed s; it is member 0 of the ensemble below, so no second run is needed),
* a 5-member ensemble (seeds s .. s+4, the same data split: ``data.seed = s``; the mean of
  their probabilities), which costs 5 times the single model's epochs,
* a snapshot ensemble (Huang et al. 2017): one run of the same epochs as the single model with
  4 cosine cycles (``cosine_restarts``), its 4 end-of-cycle snapshots averaged,
* weight averaging at the single model's epochs (``[train] average``, see ``WEIGHT_AVERAGING``):
  EMA with its default decay, and SWA after a cosine schedule over the first 3/4 of the epochs,

and, at the ensemble's cost (5 times the epochs), the two one-run rivals of the ensemble:

* the single model trained 5 times as many epochs,
* a snapshot ensemble of 5 cycles over 5 times the epochs (each cycle as long as the single
  model's whole run, so each snapshot is trained about as long as one ensemble member),

all scored on the test split: accuracy, log-loss and expected calibration error (15 bins). The
``epochs`` column is the total training epochs behind each row.

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
#: rows of single runs with weight averaging, at the single model's epochs: (row name, changes to
#: [train]). EMA: its default decay (1 - 10 / total steps) on the single model's constant rate.
#: SWA as benchmarks/averaging.py found it to help (docs/training.md, "Weight averaging"): a
#: cosine schedule, and from 0.75 of the epochs on an equal average of the end-of-epoch weights
#: at a constant SWA rate of 5e-4 (half of Adam's 1e-3); with a constant schedule it did not help.
WEIGHT_AVERAGING: list[tuple[str, dict[str, Any]]] = [
    ("EMA", {"average": "ema"}),
    ("SWA", {"average": {"name": "swa", "start": 0.75, "lr": 5e-4},
             "schedule": {"name": "cosine"}}),
]


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
                  # no early stop in any run (the best-val weights are still kept): a patience
                  # of the longest run's epochs, since a patience of None is dropped when an
                  # ensemble member's config is written out and read back (it reverts to 10)
                  "early_stopping": {"patience": args.members * args.epochs}},
        "log": {"report": False},
    }


def one_seed(args: argparse.Namespace, seed: int, runs: Path) -> dict[str, dict[str, float]]:
    """Each row's test scores and its total training epochs (``epochs``), in table order."""
    cfg = base_config(args, seed, runs)
    n, e = args.members, args.epochs
    ens = tw.ensemble({**cfg, "ensemble": {"members": n, "jobs": args.jobs}},
                      name=f"ens-{seed}")
    snap = tw.ensemble(cfg, snapshot=args.snapshots, name=f"snap-{seed}")
    rows = {"single model": {**_pick(ens.results["members"][0]), "epochs": e},
            f"snapshot ensemble ({args.snapshots})": {**_pick(snap.results["ensemble"]),
                                                      "epochs": e}}
    for i, (name, change) in enumerate(WEIGHT_AVERAGING):
        run = tw.fit({**cfg, "train": {**cfg["train"], **change}}, name=f"average{i}-{seed}",
                     quiet=True)
        rows[name] = {**_scores_of_run(run.run_dir), "epochs": e}  # as the ensembles score
    # the ensemble and its rivals at equal total epochs (n times the single model's)
    rows["members' mean"] = {**_pick(ens.results["members_mean"]), "epochs": e}
    rows[f"{n}-member ensemble"] = {**_pick(ens.results["ensemble"]), "epochs": n * e}
    long = {**cfg, "train": {**cfg["train"], "epochs": n * e}}
    run = tw.fit(long, name=f"long-{seed}", quiet=True)
    rows[f"single model, {n}x epochs"] = {**_scores_of_run(run.run_dir), "epochs": n * e}
    snap = tw.ensemble(long, snapshot=n, name=f"snap-long-{seed}")
    rows[f"snapshot ensemble ({n}), {n}x epochs"] = {**_pick(snap.results["ensemble"]),
                                                     "epochs": n * e}
    return rows


def _pick(scores: dict[str, Any]) -> dict[str, float]:
    return {k: float(scores[k]) for k in METRICS}


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
    width = max(len(name) for name in names)

    def med(name: str, metric: str) -> float:
        return statistics.median(r[name][metric] for r in per_seed)

    head = (f"{'method':<{width}} | {'epochs':>6} | {'accuracy':>8} {'ratio':>6} | "
            f"{'log-loss':>8} {'ratio':>6} | {'ECE':>6} {'ratio':>6} | {'log-loss wins':>13}")
    lines = [head, "-" * len(head)]
    base = "single model"
    for name in names:
        cells = []
        for metric in METRICS:
            v, b = med(name, metric), med(base, metric)
            cells.append(f"{v:>8.4f} {v / b if b else float('nan'):>6.3f}")
        wins = sum(r[name]["log_loss"] < r[base]["log_loss"] for r in per_seed)
        won = "" if name == base else f"{wins}/{seeds}"
        epochs = f"{per_seed[0][name]['epochs']:.0f}"
        lines.append((f"{name:<{width}} | {epochs:>6} | " + " | ".join(cells)
                      + f" | {won:>13}").rstrip())
    lines.append("per seed log-loss:")
    lines += [f"  {name:<{width}} " + " ".join(f"{r[name]['log_loss']:.4f}" for r in per_seed)
              for name in names if name != "members' mean"]
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
                   help="one seed, 6 epochs, 3 members and 3 snapshots: a smoke run")
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
    print(f"\nEnsembles and weight averaging on {args.source} ({args.arch}, {args.epochs} "
          f"epochs per model), test split, median of {args.seeds} seeds; torch "
          f"{torch.__version__}, 1 thread; epochs: the total behind each row")
    print(table(per_seed))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return {"per_seed": per_seed}


if __name__ == "__main__":
    main()

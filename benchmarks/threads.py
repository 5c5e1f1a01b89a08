"""Intra-op threads against the size of a training step: where a second thread pays.

Each row trains an MLP (Adam, batch 64, 2048 rows, 3 epochs, the trainwell Trainer) with 1 and
with N threads pinned (``Trainer(threads=...)``), best of ``--reps``, and prints the epoch
times and their ratio N/1 beside parameters x batch size, the quantity ``threads = "auto"``
(:mod:`trainwell.train.threads`) compares with ``SMALL_STEP``. Run it on an idle machine;
the 1-minute load average is printed first.

    python benchmarks/threads.py --threads 2 --reps 3
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from trainwell.train import Trainer
from trainwell.train.threads import SMALL_STEP, auto_threads

SHAPES = [([64, 64], 64), ([256, 256], 64), ([512, 512], 784), ([1024, 1024], 784),
          ([2048, 2048], 784)]


def _mlp(hidden, d):
    layers, width = [], d
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def epoch_seconds(hidden, d, threads, epochs=3, batch=64):
    torch.manual_seed(0)
    X, y = torch.randn(2048, d), torch.randint(0, 10, (2048,))
    t = Trainer(_mlp(hidden, d), epochs=epochs, batch_size=batch, seed=0, threads=threads,
                callbacks=[])
    start = time.perf_counter()
    t.fit((X, y))
    return (time.perf_counter() - start) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="the N compared with 1")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}; "
          f"1 vs {args.threads} threads, best of {args.reps}; SMALL_STEP {SMALL_STEP:.0e}")
    print(f"{'hidden':>12} {'inputs':>6} {'params x batch':>14} {'1 thread':>10} "
          f"{f'{args.threads} threads':>10} {'ratio':>6} {'auto':>5}")
    for hidden, d in SHAPES:
        model = _mlp(hidden, d)
        step = sum(p.numel() for p in model.parameters()) * 64
        one = min(epoch_seconds(hidden, d, 1) for _ in range(args.reps))
        many = min(epoch_seconds(hidden, d, args.threads) for _ in range(args.reps))
        print(f"{str(hidden):>12} {d:>6} {step:>14.2e} {one * 1e3:>8.1f}ms {many * 1e3:>8.1f}ms "
              f"{many / one:>6.2f} {auto_threads(model, 64):>5}")


if __name__ == "__main__":
    main()

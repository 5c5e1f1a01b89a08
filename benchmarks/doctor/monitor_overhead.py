"""Overhead of the TrainingMonitor on the digits MLP (256-256, batch 64, 10 epochs).

OMP_NUM_THREADS=1 python benchmarks/doctor/monitor_overhead.py
"""

from __future__ import annotations

import time

import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

from trainwell.diagnose import TrainingMonitor
from trainwell.train.trainer import Trainer


def main() -> None:
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    y = torch.tensor(y)
    split = (X[:1500], y[:1500]), (X[1500:], y[1500:])

    def run(every: int | None) -> float:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
        cbs = [TrainingMonitor(every=every)] if every else []
        t0 = time.perf_counter()
        Trainer(model, epochs=10, batch_size=64, seed=0, callbacks=cbs).fit(*split)
        return time.perf_counter() - t0

    run(None)  # warm up
    best = {e: min(run(e) for _ in range(3)) for e in (None, 50, 10, 1)}
    for every, secs in best.items():
        extra = f" (+{(secs / best[None] - 1):.0%})" if every else ""
        print(
            f"monitor every {every or '-':>4}: {secs:.3f}s for 10 epochs of 24 steps, "
            f"best of 3{extra}"
        )


if __name__ == "__main__":
    main()

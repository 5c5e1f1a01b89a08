"""Data-parallel speed: trainwell's DDP against Lightning's ``strategy="ddp"``, and against itself
in one process, on the CPU with gloo.

The workload (issue 16): the digits set, a stratified 80/20 split standardized on train, an MLP
64-256-256-10 with ReLU, Adam lr 1e-3, a global batch of 64 (32 rows per process with 2), no
validation. Each contestant runs in fresh processes, 2 under ``torchrun --standalone`` (or 1
without it), with 1 intra-op thread each (``OMP_NUM_THREADS=1``); rank 0 times every training
epoch from its start to its end (all steps, the gradient all-reduces and trainwell's loss
reduction included), and the table shows the median per-step time over the epochs after the
first (the warm-up), the ratios side by side, and the test accuracy of the trained model.

    python benchmarks/ddp_speed.py --reps 2

On a machine with 2 cores, 2 processes x 1 thread cannot be faster than 1 process: the
trainwell 2-process / 1-process ratio measures the cost of data parallelism (two half batches
and an all-reduce per step), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import _data  # noqa: E402  (the same digits split and scaling)

EPOCHS = 6
GLOBAL_BATCH = 64
WIDTH = 256


def _mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                         nn.Linear(WIDTH, 10))


def _accuracy(model, X, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


class _EpochClock:
    """Seconds of each training epoch, start to end."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.steps = 0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, steps: int) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.steps = steps


def worker_trainwell(out: Path) -> None:
    import torch

    from trainwell.train import Trainer
    from trainwell.train.distributed import distribute, process_group

    torch.manual_seed(0)
    Xtr, ytr, Xte, yte = _data()
    clock = _EpochClock()

    class Clock:
        def before_epoch(self, trainer):
            clock.start()

        def after_epoch(self, trainer):
            clock.stop(trainer.steps_per_epoch)

    with process_group("cpu") as group:
        model = _mlp()
        trainer = Trainer(model, loss="cross_entropy", optimizer={"name": "adam", "lr": 1e-3},
                          epochs=EPOCHS, batch_size=GLOBAL_BATCH, seed=0, threads=1,
                          device="cpu", callbacks=[Clock()])
        data = (Xtr, ytr)
        if group is not None:
            data = distribute(trainer, group, data, seed=0)
        trainer.fit(data)
        rank = group.rank if group is not None else 0
        world = group.world_size if group is not None else 1
    if rank == 0:
        out.write_text(json.dumps({"epochs": clock.times, "steps": clock.steps, "world": world,
                                   "accuracy": _accuracy(model, Xte, yte)}))


def worker_lightning(out: Path) -> None:
    import logging

    import lightning.pytorch as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    Xtr, ytr, Xte, yte = _data()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    clock = _EpochClock()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, _):
            xb, yb = batch
            return F.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def on_train_epoch_start(self):
            clock.start()

        def on_train_epoch_end(self):
            clock.stop(self.trainer.num_training_batches)

    module = Module()
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=world,
                        strategy="ddp" if world > 1 else "auto", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=GLOBAL_BATCH // world, shuffle=True)
    trainer.fit(module, loader)
    if trainer.global_rank == 0:
        out.write_text(json.dumps({"epochs": clock.times, "steps": clock.steps, "world": world,
                                   "accuracy": _accuracy(module.net, Xte, yte)}))


WORKERS = {"trainwell": worker_trainwell, "lightning": worker_lightning}


def _run(name: str, nproc: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    src = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    worker = [__file__, "--worker", name, "--out", str(out)]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            str(nproc), *worker] if nproc > 1 else [sys.executable, *worker])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} x{nproc} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    times = result["epochs"][1:]  # the first epoch warms up
    result["step_ms"] = 1000 * statistics.median(times) / result["steps"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1, help="runs of each contestant")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        WORKERS[args.worker](args.out)
        return
    contestants = [("trainwell", 2), ("lightning", 2), ("trainwell", 1)]
    got: dict[tuple[str, int], list[dict]] = {c: [] for c in contestants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name, nproc in contestants:  # interleaved: a busy machine hits all alike
                got[(name, nproc)].append(_run(name, nproc, Path(tmp) / f"{name}{nproc}-{rep}"))
    med = {c: statistics.median(r["step_ms"] for r in rs) for c, rs in got.items()}
    print(f"per-step time, global batch {GLOBAL_BATCH}, MLP 64-{WIDTH}-{WIDTH}-10, "
          f"{EPOCHS} epochs (median of epochs 2-{EPOCHS}), 1 thread per process, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'contestant':<24}{'ms/step':>9}{'range':>17}{'steps':>7}{'test acc':>10}")
    for (name, nproc), rs in got.items():
        ms = [r["step_ms"] for r in rs]
        print(f"{f'{name} {nproc} proc':<24}{med[(name, nproc)]:>9.3f}"
              f"{f'{min(ms):.3f}-{max(ms):.3f}':>17}{rs[0]['steps']:>7}"
              f"{statistics.median(r['accuracy'] for r in rs):>10.4f}")
    tw2, l2, tw1 = med[("trainwell", 2)], med[("lightning", 2)], med[("trainwell", 1)]
    print(f"trainwell 2 proc / lightning ddp 2 proc: {tw2 / l2:.2f}x (target <= 0.8x)")
    print(f"trainwell 2 proc / trainwell 1 proc:     {tw2 / tw1:.2f}x (on 2 cores: the overhead)")


if __name__ == "__main__":
    main()

"""Training speed: trainwell against plain PyTorch loops, scikit-learn and Lightning.

The workload (issue 4): the digits set, a stratified 80/20 split, standardized on train; an MLP
64-W-W-10 with ReLU, Adam lr 1e-3, batch B, 40 epochs. "small" is W=256, B=64; "large" is
W=1024, B=256. Each contestant runs in its own process, several times; the table shows the
median and the range of the training seconds, the ratio to the plain tensor loop, the test
accuracy and the whole process's seconds (imports included). For "large", the efficiency is the
training FLOP rate over the machine's fp32 matmul throughput, measured in the same run.

    python benchmarks/train_speed.py --reps 3 --threads 1
    python benchmarks/train_speed.py --reps 3 --threads 1,2 --sizes small,large \
        --contestants tensor,trainwell,trainwell-acc4,trainwell-bf16
    python benchmarks/train_speed.py --device cuda --reps 1 --contestants tensor,trainwell

``--device`` (default ``cpu``) is where the torch contestants train and where the matmul
throughput is measured; ``sklearn`` always runs on the CPU.

Contestants: ``trainwell`` (the Trainer, per-epoch validation included), ``tensor`` (a plain
loop indexing tensors by a permutation), ``loader`` (a plain loop over a DataLoader),
``sklearn`` (MLPClassifier), ``lightning`` (when installed; skipped with a note otherwise),
``cli``: the whole ``trainwell train`` process on the same workload (its own split of the data),
``trainwell-acc4``: the Trainer with ``accumulate = 4`` micro-batches of B/4 (the same total
batch B, so its time per sample compares with ``trainwell``'s), ``trainwell-bf16``: the Trainer
with ``precision = "bf16"`` (autocast on a CPU with native bf16; fp32 elsewhere, said in the
table), and ``trainwell-compile``: the Trainer with ``compile = true`` (its compile time is not
counted).

Each row gives the wall seconds and the process's CPU seconds of training: on a shared machine
the CPU seconds of a one-thread run are the steadier measure. One table holds every size and
thread count of the run; the lines under it compare the rows the speed targets name.
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

T0 = time.perf_counter()
_CPU_START: list[float] = []  # the process's CPU seconds when a runner's training clock started


def _start() -> float:
    """Start a runner's training clock: the wall clock it returns, and the CPU clock the worker
    reads, so both measure the same span (not the data loading and imports before it)."""
    _CPU_START.append(time.process_time())
    return time.perf_counter()
SIZES = {"small": (256, 64), "large": (1024, 256)}
EPOCHS = 40
DEVICE = "cpu"  # --device: where the torch contestants train (set in each worker process)


def _sync():
    """Wait for the device's queued work (a GPU runs asynchronously), before a clock is read."""
    if DEVICE.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _data():
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
    Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    def t(a, dt):
        return torch.tensor(np.asarray(a), dtype=dt)

    return t(Xtr, torch.float32), t(ytr, torch.int64), t(Xte, torch.float32), t(yte, torch.int64)


def _mlp(width):
    from torch import nn

    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def _accuracy(model, X, y):
    import torch

    model.eval()
    with torch.inference_mode():
        return float((model(X).argmax(1) == y).double().mean())


def run_tensor(width, bs):
    import torch
    import torch.nn.functional as F

    Xtr, ytr, Xte, yte = (a.to(DEVICE) for a in _data())
    model = _mlp(width).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _sync()
    t = _start()
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(Xtr), device=Xtr.device)
        for i in range(0, len(Xtr), bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    _sync()
    return time.perf_counter() - t, _accuracy(model, Xte, yte)


def run_loader(width, bs):
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    Xtr, ytr, Xte, yte = _data()
    model = _mlp(width).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cuda = DEVICE.startswith("cuda")
    loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=bs, shuffle=True, pin_memory=cuda)
    _sync()
    t = _start()
    for _ in range(EPOCHS):
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(DEVICE, non_blocking=True), yb.to(DEVICE, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    _sync()
    return time.perf_counter() - t, _accuracy(model, Xte.to(DEVICE), yte.to(DEVICE))


NOTES: dict[str, str] = {}  # what a worker reports beside its times (the precision used)


def run_trainwell(width, bs, accumulate=1, precision="fp32", compile=False):
    from trainwell.train import Trainer

    Xtr, ytr, Xte, yte = _data()
    trainer = Trainer(
        _mlp(width),
        loss="cross_entropy",
        optimizer={"name": "adam", "lr": 1e-3},
        epochs=EPOCHS,
        batch_size=bs // accumulate,
        accumulate=accumulate,
        precision=precision,
        compile=compile,
        seed=0,
        device=DEVICE,
        threads=None,  # the count --threads pinned, as for every contestant
    )
    _sync()
    t = _start()
    trainer.fit((Xtr, ytr), (Xte, yte))  # validates on the held-out 20% every epoch
    _sync()
    NOTES["precision"] = trainer.precision_used
    seconds = time.perf_counter() - t - (trainer.compile_time or 0.0)
    return seconds, trainer.history[-1]["val_accuracy"]  # the last epoch's model


def run_sklearn(width, bs):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    Xtr, ytr, Xte, yte = (a.numpy() for a in _data())
    clf = MLPClassifier(
        hidden_layer_sizes=(width, width),
        activation="relu",
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=bs,
        max_iter=EPOCHS,
        tol=0.0,
        n_iter_no_change=EPOCHS + 1,
        alpha=0.0,
        random_state=0,
    )
    t = _start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    return time.perf_counter() - t, float((clf.predict(Xte) == yte).mean())


def run_lightning(width, bs):
    import logging

    import lightning.pytorch as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    Xtr, ytr, Xte, yte = _data()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp(width)

        def training_step(self, batch, _):
            xb, yb = batch
            return F.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    module = Module()
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="gpu" if DEVICE.startswith("cuda") else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=bs, shuffle=True)
    t = _start()
    trainer.fit(module, loader)
    _sync()
    seconds = time.perf_counter() - t
    device = next(module.net.parameters()).device
    return seconds, _accuracy(module.net, Xte.to(device), yte.to(device))


def run_peak(width, bs):
    """The fp32 matmul throughput (FLOP/s) of the device at the large layer's size."""
    import torch

    a, b = torch.randn(2048, 1024, device=DEVICE), torch.randn(1024, 1024, device=DEVICE)
    for _ in range(3):
        a @ b
    _sync()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 2.0:
        a @ b
        n += 1
    _sync()
    return 2 * 2048 * 1024 * 1024 * n / (time.perf_counter() - t), 0.0


CLI_TOML = """
seed = 0
[data]
source = "builtin:digits"
split = {{ val = 0.2, test = 0.0, stratify = true }}
preprocess = ["standardize"]
[model]
arch = "mlp"
hidden = [{w}, {w}]
activation = "relu"
[train]
loss = "cross_entropy"
optimizer = {{ name = "adam", lr = 1e-3 }}
epochs = {epochs}
batch_size = {bs}
early_stopping = {{ patience = 1000 }}
"""


def cli_process(width, bs, threads, extra=()):
    """Seconds of a whole ``trainwell train`` process; its final val accuracy.

    ``cli`` runs with the defaults (the doctor's monitor on, report.html written at the end);
    ``cli-noreport`` adds ``--set log.report=false``, the same work as the plain scripts.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(CLI_TOML.format(w=width, bs=bs, epochs=EPOCHS))
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "trainwell",
                "train",
                str(cfg),
                "--quiet",
                "--name",
                "b",
                "--set",
                f"train.threads={threads}",
                "--set",
                f"train.device={DEVICE}",
                *extra,
            ],
            cwd=tmp,
            env=_env(threads),
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t
        lines = (Path(tmp) / "runs" / "b" / "metrics.jsonl").read_text().splitlines()
        last = json.loads(lines[-1])
        return {"train_s": last["time"], "acc": last["val_accuracy"], "process_s": wall}


RUNNERS = {
    "trainwell": run_trainwell,
    "trainwell-acc4": lambda width, bs: run_trainwell(width, bs, accumulate=4),
    "trainwell-bf16": lambda width, bs: run_trainwell(width, bs, precision="bf16"),
    "trainwell-compile": lambda width, bs: run_trainwell(width, bs, compile=True),
    "tensor": run_tensor,
    "loader": run_loader,
    "sklearn": run_sklearn,
    "lightning": run_lightning,
    "peak": run_peak,
}


def _env(threads):
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def worker(name, size, threads, device="cpu"):
    import torch

    global DEVICE
    DEVICE = device
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cpu = time.process_time()
    train_s, acc = RUNNERS[name](*SIZES[size])
    # the training's CPU seconds, from where its wall clock started (a compile's included)
    cpu_s = time.process_time() - (_CPU_START[-1] if _CPU_START else cpu)
    print(json.dumps({"train_s": train_s, "cpu_s": cpu_s, "acc": acc, **NOTES,
                      "import_and_setup_s": time.perf_counter() - T0}))


def run_one(name, size, threads):
    if name == "cli":
        return cli_process(*SIZES[size], threads)
    if name == "cli-noreport":
        return cli_process(*SIZES[size], threads, ("--set", "log.report=false"))
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--size", size, "--threads", str(threads),
         "--device", DEVICE],
        env=_env(threads),
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # the worker's own error, not only its exit status
        raise RuntimeError(f"{name} ({size}) failed:\n{out.stderr.strip()[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t
    return res


def _flops_per_run(width, bs, n_train=1437, n_val=360):
    weights = 64 * width + width * width + width * 10
    # forward 2, backward 4 FLOP per weight and sample; the first layer needs no input gradient
    train = (6 * weights - 2 * 64 * width) * n_train * EPOCHS
    val = 2 * weights * n_val * EPOCHS  # trainwell's per-epoch validation (others: none)
    return train, val


def _median(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def _ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1", help="a count, or several: 1,2")
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument(
        "--contestants", default="tensor,trainwell,loader,sklearn,lightning,cli,cli-noreport"
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--worker")
    ap.add_argument("--size", default="small")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.size, int(args.threads), args.device)
    global DEVICE
    DEVICE = args.device
    names = args.contestants.split(",")
    try:
        import lightning  # noqa: F401
    except ImportError:
        if "lightning" in names:
            print("note: lightning is not installed; skipping it")
            names.remove("lightning")
    thread_counts = [int(t) for t in args.threads.split(",")]
    print(f"device {DEVICE}, threads {args.threads}, {args.reps} reps, {EPOCHS} epochs")
    table: list[tuple[str, int, str, list[dict]]] = []
    peaks: dict[tuple[str, int], float] = {}
    for size in args.sizes.split(","):
        for threads in thread_counts:
            rows: dict[str, list[dict]] = {n: [] for n in names}
            runs = []
            for _ in range(args.reps):  # interleaved: a change of machine load hits all alike
                runs.append(run_one("peak", size, threads)["train_s"])
                for n in names:
                    rows[n].append(run_one(n, size, threads))
            peaks[size, threads] = statistics.median(runs)
            table.extend((size, threads, n, rs) for n, rs in rows.items())
    print("\nsizes: " + "; ".join(
        f"{s}: MLP 64-{SIZES[s][0]}-{SIZES[s][0]}-10, batch {SIZES[s][1]}, "
        f"{EPOCHS * -(-1437 // SIZES[s][1])} steps" for s in args.sizes.split(",")))
    print("fp32 matmul throughput (GFLOP/s, median): " + ", ".join(
        f"{s} {t} thr {p / 1e9:.1f}" for (s, t), p in peaks.items()))
    print(
        "\n| size | threads | contestant | train s (median) | range | x tensor loop | cpu s "
        "| x tensor (cpu) | ms/step | test acc | precision | process s | % of matmul peak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    med: dict[tuple[str, int, str], dict] = {}
    for size, threads, n, rs in table:
        width, bs = SIZES[size]
        base = [r for s, t, m, r in table if (s, t, m) == (size, threads, "tensor")]
        ts = [r["train_s"] for r in rs]
        m = {"train_s": statistics.median(ts), "cpu_s": _median(rs, "cpu_s"),
             "acc": statistics.median(r["acc"] for r in rs),
             "process_s": statistics.median(r["process_s"] for r in rs),
             "precision": rs[-1].get("precision", "fp32")}
        med[size, threads, n] = m
        b = {"train_s": _median(base[0], "train_s"), "cpu_s": _median(base[0], "cpu_s")} if base \
            else {}
        train_f, val_f = _flops_per_run(width, bs)
        flops = train_f + (val_f if n.startswith(("trainwell", "cli")) else 0)
        steps = EPOCHS * -(-1437 // bs)
        precision = m["precision"]
        cpu = "-" if m["cpu_s"] is None else f"{m['cpu_s']:.2f}"
        cells = [
            size, threads, n, f"{m['train_s']:.2f}", f"{min(ts):.2f}-{max(ts):.2f}",
            _ratio(m["train_s"], b.get("train_s")), cpu, _ratio(m["cpu_s"], b.get("cpu_s")),
            f"{1000 * m['train_s'] / steps:.2f}", f"{m['acc']:.4f}", precision,
            f"{m['process_s']:.2f}", f"{100 * flops / m['train_s'] / peaks[size, threads]:.0f}%",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    _targets(med, peaks)
    return 0


def _targets(med, peaks):
    """The issue's speed targets, from the rows of this run that they compare."""
    lines = []
    for (size, threads, n), m in sorted(med.items()):
        tensor = med.get((size, threads, "tensor"))
        trainwell = med.get((size, threads, "trainwell"))
        if n == "trainwell" and tensor and size == "small":
            lines.append(f"small, {threads} thread(s): trainwell / tensor loop = wall "
                         f"{_ratio(m['train_s'], tensor['train_s'])}, cpu "
                         f"{_ratio(m['cpu_s'], tensor['cpu_s'])} (target <= 0.6); test acc "
                         f"{m['acc']:.4f} vs {tensor['acc']:.4f}")
        if n == "trainwell" and size == "large":
            width, bs = SIZES[size]
            flops = sum(_flops_per_run(width, bs))
            lines.append(f"large, {threads} thread(s): trainwell fp32 at "
                         f"{100 * flops / m['train_s'] / peaks[size, threads]:.0f}% of the "
                         "measured matmul throughput (target >= 85%)")
        if n == "trainwell-bf16" and tensor:
            lines.append(f"{size}, {threads} thread(s): trainwell bf16 speed / fp32 tensor loop = "
                         f"wall {_ratio(tensor['train_s'], m['train_s'])} (target >= 1.5); test "
                         f"acc {m['acc']:.4f} vs {tensor['acc']:.4f} (within 0.005); ran in "
                         f"{m['precision']}")
        if n == "trainwell-acc4" and trainwell:
            lines.append(f"{size}, {threads} thread(s): accumulate 4 / accumulate 1 time per "
                         f"sample at the same total batch = wall "
                         f"{_ratio(m['train_s'], trainwell['train_s'])}, cpu "
                         f"{_ratio(m['cpu_s'], trainwell['cpu_s'])} (target <= 1.1)")
    if lines:
        print("\ntargets:\n" + "\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    raise SystemExit(main())

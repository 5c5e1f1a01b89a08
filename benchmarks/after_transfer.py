"""Transfer learning on MNIST digits: pretrained on 0-4, learning 5-9 from k labels per class.

The source is the checkpoint shipped as ``pretrained:mnist04`` (``python -m
trainwell.after.pretrain``: a small CNN, conv 16 -> conv 32 with BatchNorm and a linear head,
trained with small affine augmentations on digits 0-4 of ``builtin:mnist_sample``'s training
split). The target task is digits 5-9: k = 1,
5, 10, 30 training images per class drawn (per seed) from the training split, scored on the
1,250 images of 5-9 in the set's fixed test split, which no method sees.

Methods, all the same network trained by ``trainwell.fit`` with Adam (lr 3e-3), batches of 32
and the same number of optimizer steps (``--steps``; epochs = steps / batches per epoch; no
early stopping), scored with the weights of the epoch of lowest training loss (no validation
split: with k labels per class there is none to spare):

* scratch: the network at its usual initialization;
* probe: ``transfer = "probe"``, the pretrained backbone frozen (BatchNorm in eval mode), a
  new linear head;
* finetune: ``transfer = "finetune"``, every layer, the pretrained ones at ``lr_mult`` 0.1;
* probe_then_finetune: the head alone for half the steps, then every layer (``lr_mult`` 0.1);
* auto: ``transfer = "auto"``, lecture 002's table from the rows per class and a measured
  similarity (the run says which cell it chose), with the defaults a user gets (``lr_mult``
  1: a source found "very different" is fine-tuned at the full rate).

A negative-transfer case follows: the same network pretrained on 0-4 with shuffled labels
(``--shuffle-labels``), where ``auto`` and the doctor's transfer check should say so.

    nice python benchmarks/after_transfer.py --seeds 3 --threads 1
    python benchmarks/after_transfer.py --quick       # one seed, k = 1 and 5, 20 steps

Each cell is the mean test accuracy over the seeds; ratios are to scratch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import trainwell
from trainwell.after.pretrain import MODEL, mnist_rows, pretrain

TARGET_CLASSES = (5, 6, 7, 8, 9)
METHODS = ("scratch", "probe", "finetune", "probe_then_finetune", "auto")
KS = (1, 5, 10, 30)
LR = 3e-3
#: the optimizer of every method (``--optimizer``)
OPTIMIZER = {"name": "adam", "lr": LR}
LR_MULT = 0.1
BATCH = 32


def target_data(folder: Path, k: int, seed: int) -> dict[str, Any]:
    """An ``npz:`` source of k training images per class of 5-9 and the fixed test images,
    with ``split.indices`` that keep them apart; the ``[data]`` section reading it."""
    X, y, test = mnist_rows()
    rng = np.random.default_rng([seed, k])
    train_rows = np.concatenate([
        rng.choice(np.flatnonzero(~test & (y == c)), size=k, replace=False)
        for c in TARGET_CLASSES])
    test_rows = np.flatnonzero(test & np.isin(y, TARGET_CLASSES))
    rows = np.concatenate([train_rows, test_rows])
    npz = folder / f"target-k{k}-s{seed}.npz"
    np.savez(npz, X=X[rows], y=y[rows])
    split = folder / f"target-k{k}-s{seed}.json"
    split.write_text(json.dumps({"train": list(range(len(train_rows))),
                                 "test": list(range(len(train_rows), len(rows)))}))
    return {"source": f"npz:{npz}", "split": {"indices": str(split)}, "preprocess": []}


def run_method(method: str, data: dict[str, Any], k: int, steps: int, seed: int, source: str,
               runs: Path) -> dict[str, Any]:
    """One ``trainwell.fit``; returns the test accuracy and, for auto, what it chose."""
    n = k * len(TARGET_CLASSES)
    batches = -(-n // BATCH)
    epochs = max(2, round(steps / batches))
    model: dict[str, Any] = dict(MODEL)
    if method != "scratch":
        model.update(init_from=source, transfer=method)
        if method in ("finetune", "probe_then_finetune"):
            model["lr_mult"] = LR_MULT
    cfg = {"seed": seed, "runs_dir": str(runs), "data": data, "model": model,
           "log": {"report": False}, "doctor": {"monitor": False},
           "train": {"epochs": epochs, "batch_size": BATCH, "threads": 1, "checkpoint_every": 0,
                     "early_stopping": {"patience": None},  # every method: all its steps
                     "optimizer": OPTIMIZER}}
    with contextlib.redirect_stdout(io.StringIO()):
        run = trainwell.fit(cfg, quiet=True)
    out = {"accuracy": float(run.metrics["test_accuracy"]), "steps": run.trainer.step}
    chosen = run.results.get("transfer", {})
    if chosen.get("auto"):
        out["choice"] = chosen["mode"]
        out["reason"] = chosen["auto"]["reason"]
    return out


def doctor_verdict(data: dict[str, Any], source: str, seed: int) -> str:
    """The doctor's transfer finding on the target data with ``source``."""
    from trainwell.after.transfer import doctor_inputs
    from trainwell.config import load_config
    from trainwell.diagnose.from_config import doctor_from_config

    cfg = load_config({"seed": seed, "data": data,
                       "model": {**MODEL, "init_from": source},
                       "doctor": {"checks": ["transfer"]}})
    with contextlib.redirect_stdout(io.StringIO()):
        report = doctor_from_config(cfg, **doctor_inputs(cfg))
    (finding,) = [f for f in report.findings if f.check == "transfer.negative"]
    return f"{finding.status}: {finding.title}"


def table(results: dict[tuple[str, int], list[float]], ks: tuple[int, ...],
          methods: tuple[str, ...]) -> str:
    lines = [f"{'method':<22}" + "".join(f"{f'k={k}':>16}" for k in ks)]
    for m in methods:
        cells = []
        for k in ks:
            acc = statistics.mean(results[(m, k)])
            base = statistics.mean(results[("scratch", k)])
            cells.append(f"{acc:>8.1%} x{acc / base:>5.2f}  ")
        lines.append(f"{m:<22}" + "".join(cells))
    best = []
    for k in ks:
        top = max(statistics.mean(results[(m, k)]) for m in methods if m != "auto")
        best.append(statistics.mean(results[("auto", k)]) - top)
    lines.append(f"{'auto - best (points)':<22}" + "".join(f"{100 * b:>+14.1f}  " for b in best))
    gain = [statistics.mean(results[("auto", k)]) - statistics.mean(results[("scratch", k)])
            for k in ks]
    lines.append(f"{'auto - scratch':<22}" + "".join(f"{100 * g:>+14.1f}  " for g in gain))
    return "\n".join(lines)


def benchmark(ks: tuple[int, ...], seeds: int, steps: int, source: str | None = None,
              negative: bool = True, out: Any = sys.stdout) -> dict[str, Any]:
    """The whole table (and the negative-transfer case); returns the numbers."""
    t0 = time.perf_counter()
    results: dict[tuple[str, int], list[float]] = {}
    choices: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = source or "pretrained:mnist04"
        for k in ks:
            for seed in range(seeds):
                data = target_data(folder, k, seed)
                for m in METHODS:
                    r = run_method(m, data, k, steps, seed, source, folder / "runs")
                    results.setdefault((m, k), []).append(r["accuracy"])
                    if "choice" in r:
                        choices.setdefault(k, []).append(r["choice"])
                        if seed == 0:
                            print(f"k={k} auto: {r['reason']}", file=out)
        print(f"\nMNIST digits 5-9 from k labels per class, source {source} (digits 0-4); "
              f"{seeds} seed(s), {steps} optimizer steps each; test accuracy (x scratch)",
              file=out)
        print(table(results, ks, METHODS), file=out)
        print("auto chose: " + "; ".join(f"k={k}: {', '.join(c)}" for k, c in choices.items()),
              file=out)
        negative_case: dict[str, Any] = {}
        if negative:
            with contextlib.redirect_stdout(io.StringIO()):
                pretrain(folder, name="shuffled", shuffle_labels=True,
                         epochs=3 if steps < 100 else 30)
            bad = str(folder / "shuffled.safetensors")
            k = max(ks)
            data = target_data(folder, k, 0)
            scratch = run_method("scratch", data, k, steps, 0, bad, folder / "runs")
            auto = run_method("auto", data, k, steps, 0, bad, folder / "runs")
            probe = run_method("probe", data, k, steps, 0, bad, folder / "runs")
            verdict = doctor_verdict(data, bad, 0)
            negative_case = {"k": k, "scratch": scratch["accuracy"], "probe": probe["accuracy"],
                             "auto": auto["accuracy"], "choice": auto.get("choice"),
                             "doctor": verdict}
            print(f"\nnegative transfer (source pretrained on shuffled labels), k={k}, seed 0: "
                  f"scratch {scratch['accuracy']:.1%}, probe {probe['accuracy']:.1%}, auto "
                  f"{auto['accuracy']:.1%} (chose {auto.get('choice')}); doctor: {verdict}",
                  file=out)
            print(f"auto: {auto.get('reason')}", file=out)
    print(f"\n{time.perf_counter() - t0:.0f} s", file=out)
    return {"results": {f"{m} k={k}": v for (m, k), v in results.items()},
            "choices": choices, "negative": negative_case}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150, help="optimizer steps of every method")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--source", default=None, help="default: pretrained:mnist04")
    p.add_argument("--quick", action="store_true", help="one seed, k = 1 and 5, 20 steps")
    args = p.parse_args(argv)
    logging.getLogger("trainwell").setLevel(logging.ERROR)  # "no validation data" notices
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.quick:
        benchmark((1, 5), 1, 20, args.source)
    else:
        benchmark(KS, args.seeds, args.steps, args.source)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shipped pretrained checkpoint, made again: ``python -m trainwell.after.pretrain``.

A small CNN (two conv blocks with BatchNorm, 16 and 32 channels, and a linear head on their
flattened features; about 13,000 parameters, 52 kB as safetensors) trained for 30 epochs with
``[augment.affine]`` (rotations, shifts, zooms, shears) on digits 0-4 of
``builtin:mnist_sample``'s training split (its fixed test split is never read), written as
``<name>.safetensors`` with a ``<name>.json`` sidecar naming its architecture, input shape,
classes, preprocessing and the command that made it. ``model.init_from =
"pretrained:mnist04"`` loads it; docs/transfer.md shows it at work on digits 5-9.

The run is an ordinary trainwell run (``trainwell.fit``) on one thread from one seed: the same
command gives the same weights on the same platform and library versions.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

NAME = "mnist04"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
#: the ``[model]`` section of the shipped checkpoint
MODEL: dict[str, Any] = {"arch": "cnn", "channels": [16, 32], "hidden": [], "norm": "batch"}
#: the ``[train]`` section it was trained with
TRAIN: dict[str, Any] = {"epochs": 30, "batch_size": 64, "threads": 1,
                         "optimizer": {"name": "adam", "lr": 1e-3}}
#: the ``[augment]`` section it was trained with: small rotations, shifts, zooms and shears of
#: the training images, so the features describe strokes wherever and however tilted they are
#: rather than the 1,125 images themselves (on digits 5-9 from one image per class, a linear
#: probe on them scored about 3 points more than on the same network trained without)
AUGMENT: dict[str, Any] = {"affine": {"rotate": 15, "translate": 0.15, "scale": [0.8, 1.2],
                                      "shear": 10}}
#: its ``data.preprocess``: none, the pixels as ``builtin:mnist_sample`` gives them, in [0, 1]
#: (a run that transfers from it should feed it the same: ``data.preprocess = []``)
PREPROCESS: list[Any] = []
COMMAND = "python -m trainwell.after.pretrain"
PACKAGE_DIR = Path(__file__).resolve().parent / "pretrained"


def mnist_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``builtin:mnist_sample`` as arrays: images ``(n, 1, 28, 28)`` in [0, 1], labels, and a
    mask of its fixed test rows (the same for every seed)."""
    from trainwell.data.builtin import load_builtin

    data = load_builtin("mnist_sample", {}, 0)
    test = np.zeros(len(data.y), dtype=bool)
    test[np.asarray(data.test_rows, dtype=np.int64)] = True
    return np.asarray(data.X, dtype=np.float32), np.asarray(data.y, dtype=np.int64), test


def write_npz(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    """``X`` and ``y`` as an ``npz:`` source."""
    np.savez(path, X=X, y=y)
    return path


def pretrain(out_dir: str | Path = PACKAGE_DIR, *, name: str = NAME, seed: int = 0,
             epochs: int | None = None, classes: tuple[int, ...] = SOURCE_CLASSES,
             shuffle_labels: bool = False, quiet: bool = True) -> Path:
    """Train the source model and write ``<out_dir>/<name>.safetensors`` and its sidecar.

    Args:
        out_dir: where the two files go (default: the package's ``pretrained`` folder).
        name: their stem (``pretrained:<name>``).
        seed: the run's seed.
        epochs: default ``TRAIN["epochs"]``.
        classes: the digits of the training split it learns.
        shuffle_labels: shuffle the labels first (a source that teaches nothing: the
            negative-transfer case of the benchmark).
        quiet: no per-epoch lines.

    Returns:
        The safetensors file.
    """
    import trainwell
    from trainwell.runs import write_json_atomic

    X, y, test = mnist_rows()
    keep = ~test & np.isin(y, classes)
    Xs, ys = X[keep], y[keep]
    if shuffle_labels:
        ys = np.random.default_rng(seed).permutation(ys)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = {**TRAIN, "epochs": epochs or TRAIN["epochs"]}
    with tempfile.TemporaryDirectory() as tmp:
        source = write_npz(Path(tmp) / "source.npz", Xs, ys)
        # shuffled labels: no validation (there is nothing to validate); the last epoch kept
        val = 0.0 if shuffle_labels else 0.1
        cfg = {"seed": seed, "runs_dir": str(Path(tmp) / "runs"),
               "data": {"source": f"npz:{source}", "split": {"val": val, "test": 0.0},
                        "preprocess": PREPROCESS},
               "model": MODEL, "train": train, "log": {"report": False}}
        if not shuffle_labels:  # a source that teaches nothing needs no augmentation
            cfg["augment"] = AUGMENT
        run = trainwell.fit(cfg, name="pretrain", quiet=quiet)
        dest = out / f"{name}.safetensors"
        shutil.copyfile(run.run_dir / "model.safetensors", dest)
        import torch

        flags = (f" --name {name}" if name != NAME else "") + (
            f" --epochs {epochs}" if epochs else "") + (
            " --shuffle-labels" if shuffle_labels else "")
        write_json_atomic(out / f"{name}.json", {
            "name": name,
            "model": MODEL,
            "input_shape": [1, 28, 28],
            "task": "multiclass",
            "classes": [int(c) for c in sorted(set(ys.tolist()))],
            "preprocess": PREPROCESS,
            "pixels": "grey levels scaled to [0, 1] (0 = black background), no other "
                      "preprocessing: transfer with data.preprocess = []",
            "data": (f"builtin:mnist_sample, digits {', '.join(map(str, classes))} of its "
                     f"training split (the fixed test split unused): {int(keep.sum())} images"
                     + ("; labels shuffled, no validation" if shuffle_labels
                        else "; 10% of them held out for validation")),
            "train": train,
            "augment": {} if shuffle_labels else AUGMENT,
            "seed": seed,
            "val_accuracy": run.metrics.get("val_accuracy"),
            "command": f"{COMMAND} --seed {seed}{flags}",
            "versions": {"trainwell": trainwell.__version__, "torch": torch.__version__},
        })
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainwell.after.pretrain",
        description="Train the small CNN shipped as pretrained:mnist04 (digits 0-4 of "
                    "builtin:mnist_sample's training split) and write it with its sidecar.")
    parser.add_argument("--out", default=str(PACKAGE_DIR),
                        help="folder for <name>.safetensors and <name>.json (default: the "
                             "package's pretrained folder)")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--shuffle-labels", action="store_true",
                        help="shuffle the labels: a source that teaches nothing")
    args = parser.parse_args(argv)
    dest = pretrain(args.out, name=args.name, seed=args.seed, epochs=args.epochs,
                    shuffle_labels=args.shuffle_labels, quiet=False)
    print(f"wrote {dest} ({dest.stat().st_size / 1e6:.2f} MB) and {dest.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exact resume, end to end: SIGKILL a run after epoch k, resume it from the command line, and
compare it with an uninterrupted run of the same config (metrics.jsonl without times, the
weights of model.safetensors bit for bit, the test metrics).

Configs: an MLP on iris, a regression with a standardized target (diabetes), a multitask run
with two heads, and domain-adversarial training (two data streams). Kills after epoch 1 (before
the first checkpoint: the run starts again from its config), 3 and 6, with checkpoints every 2
epochs. One thread.

    python benchmarks/kill_resume.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import tomli_w
import torch
from safetensors.torch import load_file

MOONS = {"n_samples": 300, "angle": 35}
CONFIGS = {
    "iris-mlp": {"data": {"source": "builtin:iris"}, "model": {"hidden": [16]},
                 "train": {"batch_size": 16}},
    "diabetes-target-scale": {"data": {"source": "builtin:diabetes"}, "model": {"hidden": [32]}},
    "multitask-heads": {
        "data": {"source": "builtin:multitask",
                 "params": {"n_samples": 400, "labelled_label": 0.3}},
        "model": {"hidden": [32]},
        "heads": {"label": {"task": "multiclass"}, "value": {"weight": 0.5}},
    },
    "dann-moons": {
        "data": {"source": "builtin:rotated_moons", "params": MOONS},
        "domain": {"target": "builtin:rotated_moons", "params": {**MOONS, "domain": "target"}},
        "model": {"hidden": [32, 32]},
        "train": {"batch_size": 32},
    },
}
KILL = textwrap.dedent("""
    import os, signal, sys
    import trainwell

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    trainwell.fit(sys.argv[1], name="killed", quiet=True, callbacks=[Kill()])
""")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, check=False)


def _rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in ("epoch_time", "time")}
            for x in lines]


def identical(cfg: dict, k: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "c.toml").write_text(tomli_w.dumps(cfg))
        killed = _run(["-c", KILL, "c.toml", str(k)], d)
        assert killed.returncode == -9, killed.stderr[-800:]
        for args in (["-m", "trainwell", "train", "--resume", "runs/killed", "--quiet"],
                     ["-m", "trainwell", "train", "c.toml", "--quiet", "--name", "full"]):
            done = _run(args, d)
            assert done.returncode == 0, done.stderr[-800:]
        a, b = d / "runs" / "killed", d / "runs" / "full"
        wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
        test_a = json.loads((a / "results.json").read_text())["test"]
        test_b = json.loads((b / "results.json").read_text())["test"]
        return (_rows(a) == _rows(b) and wa.keys() == wb.keys()
                and all(torch.equal(wa[n], wb[n]) for n in wb) and test_a == test_b)


def main() -> None:
    same = total = 0
    for name, base in CONFIGS.items():
        train = {"epochs": 8, "checkpoint_every": 2, **base.get("train", {})}
        cfg = {**base, "train": train, "log": {"report": False}}
        for k in (1, 3, 6):
            ok = identical(cfg, k)
            same, total = same + ok, total + 1
            note = " (before the first checkpoint)" if k == 1 else ""
            print(f"{name:24s} killed after epoch {k}{note}: {'identical' if ok else 'DIFFERENT'}",
                  flush=True)
    print(f"{same} of {total} kill/resume runs bit-identical to uninterrupted runs")


if __name__ == "__main__":
    main()

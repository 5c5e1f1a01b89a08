"""Killing a training run for real: a child process that SIGKILLs itself at an epoch's end, and
the per-epoch records two runs are compared by (resume tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import tomli_w

import trainwell

_KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.use_deterministic_algorithms(sys.argv[3] == "1")
    import trainwell

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    trainwell.fit(sys.argv[1], name="killed", quiet=True, callbacks=[Kill()])
""")


def train_and_kill(cfg: dict, folder: Path, epoch: int, deterministic: bool = False) -> None:
    """Write ``cfg`` to ``folder`` and train it there as ``runs/killed`` (with the config's
    ``runs_dir``) in a child process that is SIGKILLed at the end of ``epoch`` (after that
    epoch's record, before its checkpoint is taken: the last checkpoint is of an earlier
    epoch); the child runs this trainwell with one thread (and with torch's deterministic
    algorithms, as a GPU run needs them to resume bit for bit, with ``deterministic``)."""
    path = folder / "killed.toml"
    path.write_text(tomli_w.dumps(cfg))
    src = str(Path(trainwell.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(path), str(epoch), "1" if deterministic else "0"],
        cwd=folder, env=env, capture_output=True, check=False, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]


def epoch_records(run_dir: Path) -> list[dict]:
    """The lines of ``metrics.jsonl`` without their wall-clock times."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in rows]

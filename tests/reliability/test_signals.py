"""Every ending sets a final status: SIGTERM or SIGINT at start-up or mid-training leaves a run
"interrupted" (never "running"), the run resumes to the end of an uninterrupted run, and the
run directory gets the user's umask. Real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

import trainwell

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [32, 32]},
    "train": {"epochs": 400, "batch_size": 8, "checkpoint_every": 1},
    "log": {"report": False},
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(tmp_path, name):
    (tmp_path / "c.toml").write_text(tomli_w.dumps(IRIS))
    return subprocess.Popen(
        [sys.executable, "-m", "trainwell", "train", "c.toml", "--quiet", "--name", name],
        cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a parent (a test worker) may have SIGINT ignored, and a child
        # inherits that; Ctrl-C reaches a command started from a shell prompt
        preexec_fn=_default_sigint,
    )


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in rows]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_training_ends_the_run_interrupted_and_it_resumes(runs_dir, tmp_path, sig):
    proc = _start(tmp_path, "r")
    _wait_for(runs_dir / "r" / "checkpoints" / "last.json", proc)
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert time.monotonic() - t0 < 30
    assert code == (143 if sig == signal.SIGTERM else 130), proc.stderr.read()
    err = proc.stderr.read()
    assert "Traceback" not in err and "interrupted" in err
    # Ctrl-C says it too, naming the run's directory
    assert "the run continues with trainwell train --resume " in err
    assert err.rstrip().endswith(str(Path("runs") / "r")), err
    meta = json.loads((runs_dir / "r" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["finished"]
    done = len(_metrics(runs_dir / "r"))
    assert 0 < done < 400
    small = {**IRIS, "train": {**IRIS["train"], "epochs": done + 2}}
    # the config says 400 epochs: resume a copy that ends soon after, to compare whole runs
    (runs_dir / "r" / "config.toml").write_text(
        (runs_dir / "r" / "config.toml").read_text().replace("epochs = 400",
                                                           f"epochs = {done + 2}"))
    resumed = subprocess.run(
        [sys.executable, "-m", "trainwell", "train", "--resume", "runs/r", "--quiet"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    full = trainwell.fit(small, name="full", quiet=True)
    assert _metrics(runs_dir / "r") == _metrics(full.run_dir)
    assert json.loads((runs_dir / "r" / "meta.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_at_start_up_never_leaves_a_running_run(runs_dir, tmp_path, sig):
    proc = _start(tmp_path, "s")
    _wait_for(runs_dir / "s", proc)  # the run directory has just appeared
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code in (130, 143), proc.stderr.read()
    meta = json.loads((runs_dir / "s" / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    umask = os.umask(0o022)
    os.umask(umask)
    assert ((runs_dir / "s").stat().st_mode & 0o777) == (0o777 & ~umask)

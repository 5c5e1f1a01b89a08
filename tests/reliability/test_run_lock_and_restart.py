"""A run directory has one trainer at a time, and a run killed before its first checkpoint
resumes: real processes, real SIGKILL, the outcome checked (no epoch twice, nothing lost,
bit-identical to an uninterrupted run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tomli_w

import trainwell
from trainwell.errors import RunError
from trainwell.run_lock import RunLock

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16]},
    "train": {"epochs": 8, "batch_size": 16, "checkpoint_every": 4},
    "log": {"report": False},
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

SLOW = textwrap.dedent("""
    import pathlib, sys, time
    import trainwell

    class Hold:  # after epoch 2, wait until the test says go
        def after_epoch(self, trainer):
            if trainer.epoch == 2:
                pathlib.Path("started").touch()
                deadline = time.monotonic() + 120
                while not pathlib.Path("go").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)

    trainwell.fit(sys.argv[1], name="r", quiet=True, callbacks=[Hold()])
""")

KILL_BEFORE_CHECKPOINT = textwrap.dedent("""
    import os, signal, sys
    import trainwell

    class Kill:
        def after_epoch(self, trainer):
            if trainer.epoch == 3:  # checkpoint_every = 4: no checkpoint yet
                os.kill(os.getpid(), signal.SIGKILL)

    trainwell.fit(sys.argv[1], name="killed", quiet=True, callbacks=[Kill()])
""")


def _epochs(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "time")} for r in rows]


def test_a_second_resume_of_a_training_run_is_refused_naming_the_holder(runs_dir, tmp_path):
    (tmp_path / "iris.toml").write_text(tomli_w.dumps(IRIS))
    first = subprocess.Popen([sys.executable, "-c", SLOW, "iris.toml"], cwd=tmp_path, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "trainwell", "train", "--resume", "runs/r", "--quiet"],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, check=False,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: run runs/r is in use by another "
                                                       f"process (pid {first.pid} on ")
        (tmp_path / "go").touch()
        assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert _epochs(runs_dir / "r") == list(range(1, 9))  # each epoch once, in order
    assert json.loads((runs_dir / "r" / "meta.json").read_text())["status"] == "completed"


def test_the_lock_goes_with_its_process(runs_dir):
    run_dir = runs_dir / "x"
    run_dir.mkdir()
    with RunLock(run_dir), pytest.raises(RunError, match=r"in use by another process \(pid "):
        RunLock(run_dir).acquire()  # a second holder in the same process is refused too
    with RunLock(run_dir):  # released: free again
        pass
    proc = subprocess.run(
        [sys.executable, "-c", "import os, sys\nfrom trainwell.run_lock import RunLock\n"
         "RunLock(sys.argv[1]).acquire()\nos.kill(os.getpid(), 9)", str(run_dir)],
        env=ENV, check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    with RunLock(run_dir):  # a killed holder leaves no stale lock
        pass


def test_a_run_killed_before_its_first_checkpoint_resumes_from_its_config(runs_dir, tmp_path):
    (tmp_path / "iris.toml").write_text(tomli_w.dumps(IRIS))
    proc = subprocess.run([sys.executable, "-c", KILL_BEFORE_CHECKPOINT, "iris.toml"],
                          cwd=tmp_path, env=ENV, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    killed = runs_dir / "killed"
    assert not (killed / "checkpoints" / "last.json").exists()
    assert json.loads((killed / "meta.json").read_text())["status"] == "running"
    proc = subprocess.run(
        [sys.executable, "-m", "trainwell", "train", "--resume", "runs/killed", "--quiet"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    full = trainwell.fit(IRIS, name="full", quiet=True)
    assert _metrics(killed) == _metrics(full.run_dir)
    a = trainwell.load(killed).model.state_dict()
    assert all(a[k].equal(v) for k, v in full.model.state_dict().items())
    assert json.loads((killed / "meta.json").read_text())["status"] == "completed"

"""A killed ensemble resumes: a real ``trainwell ensemble`` process with two member processes
is killed with SIGKILL mid-training; ``--resume`` keeps the finished members, resumes the
interrupted one from its checkpoint, trains nothing twice and ends with the predictions of an
ensemble that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w

import trainwell as tw

SRC = Path(__file__).resolve().parents[2] / "src"
EPOCHS = 25
CFG = {
    "seed": 0,
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16]},
    "train": {"epochs": EPOCHS, "batch_size": 8, "checkpoint_every": 1},
    "log": {"report": False},
    "ensemble": {"members": 3, "jobs": 2},
}


def _status(member: Path) -> str | None:
    try:
        return json.loads((member / "meta.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _epochs(member: Path) -> list[int]:
    lines = (member / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


@pytest.mark.slow
def test_a_killed_ensemble_resumes_without_training_twice(runs_dir):
    (runs_dir.parent / "c.toml").write_text(tomli_w.dumps(CFG))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainwell", "ensemble", "c.toml", "--quiet", "--name", "k"],
        cwd=runs_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    members = [runs_dir / "k" / "members" / str(i) for i in range(3)]
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            # members 0 and 1 done, member 2 past its first checkpoint but not finished
            if (all(_status(m) == "completed" for m in members[:2])
                    and (members[2] / "checkpoints" / "last.json").is_file()
                    and _status(members[2]) == "running"):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        while True:  # the member processes die with their parent
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    kept = {i: (members[i] / "model.safetensors").read_bytes() for i in range(2)}
    stamps = {i: (members[i] / "model.safetensors").stat().st_mtime_ns for i in range(2)}
    done_before = len(_epochs(members[2]))
    assert 1 <= done_before < EPOCHS
    assert json.loads((runs_dir / "k" / "ensemble.json").read_text())["status"] == "running"

    resumed = tw.ensemble(resume=runs_dir / "k")
    for i in range(2):  # finished members are kept as they were
        assert (members[i] / "model.safetensors").stat().st_mtime_ns == stamps[i]
        assert (members[i] / "model.safetensors").read_bytes() == kept[i]
    for m in members:  # every epoch once, none repeated
        assert _epochs(m) == list(range(1, EPOCHS + 1))
        assert _status(m) == "completed"
    assert sorted(p.name for p in (runs_dir / "k" / "members").iterdir()) == ["0", "1", "2"]
    assert json.loads((runs_dir / "k" / "ensemble.json").read_text())["status"] == "completed"

    whole = tw.ensemble(runs_dir.parent / "c.toml", name="whole")
    with np.load(resumed.run_dir / "predictions.npz") as a, \
            np.load(whole.run_dir / "predictions.npz") as b:
        assert np.array_equal(a["proba"], b["proba"])
        assert np.array_equal(a["y_pred"], b["y_pred"])
    assert resumed.results["ensemble"] == whole.results["ensemble"]


def test_a_terminated_ensemble_says_how_it_resumes(monkeypatch, capsys):
    import trainwell.ensemble_run
    from trainwell.cli import main as cli_main
    from trainwell.errors import Terminated

    def stopped(*args, **kwargs):
        raise Terminated(15)

    monkeypatch.setattr(trainwell.ensemble_run, "ensemble", stopped)
    assert cli_main(["ensemble", "--resume", "runs/ens"]) == 128 + 15
    err = capsys.readouterr().err
    assert "trainwell ensemble --resume ENS" in err and "train --resume" not in err, err

"""What was measured at the start of a run (the loss at step 0, the first layer statistics) is
kept through a SIGKILL and resume: the resumed run's doctor.json equals an uninterrupted one's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from killing import train_and_kill

import trainwell

IRIS = {
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16]},
    "train": {"epochs": 8, "batch_size": 16, "checkpoint_every": 2},
    "doctor": {"monitor_every": 3},
    "log": {"report": False},
}
def test_a_resumed_runs_doctor_json_equals_an_uninterrupted_ones(runs_dir, tmp_path):
    train_and_kill(IRIS, tmp_path, 5)  # the checkpoint of epoch 4 exists
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "trainwell", "train", "--resume", "runs/killed", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    full = trainwell.fit(IRIS, name="full", quiet=True)
    resumed = json.loads((runs_dir / "killed" / "doctor.json").read_text())
    whole = json.loads((full.run_dir / "doctor.json").read_text())
    assert resumed["activation_stats"]["init"]["step"] == 1  # not the first step after resume
    assert resumed == whole

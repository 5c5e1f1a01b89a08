"""Ctrl-C and a killed worker during ``trainwell tune --workers 2`` (issue 12, items 3 and 4).

Real processes and real signals: the command runs in its own process group, Ctrl-C is SIGINT
to that whole group (as a terminal sends it), a dead worker is a SIGKILL of one worker process.
The trials train a small network on iris for a few seconds each.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BUDGET = 3
EXPERIMENT = f"""
name = "sig"
seed = 0

[data]
source = "builtin:iris"

[model]
hidden = [16]

[train]
epochs = 12
batch_size = 16
checkpoint_every = 2
early_stopping = {{ patience = 1000 }}

[log]
report = false

[tune]
method = "random"
trials = {BUDGET}

[tune.pruner]
name = "none"

[tune.space]
"train.optimizer.lr" = "loguniform(1e-3, 1e-1)"
"model.dropout" = "uniform(0, 0.5)"
"""


def _start(*args: str) -> subprocess.Popen:
    """``trainwell tune`` in a process group of its own, like a command typed in a terminal."""
    out = open("tune.log", "ab")  # noqa: SIM115 - closed with the process, below
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainwell", "tune", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return proc


def _log() -> str:
    return Path("tune.log").read_text(errors="replace")


def _query(db: Path, sql: str) -> list[tuple]:
    """Rows of a read-only query of the study database, while workers write to it (none
    while the database or its tables do not exist yet)."""
    if not db.is_file():
        return []
    for _ in range(100):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:  # briefly locked, or tables not created yet
            if "no such table" in str(exc):
                return []
            time.sleep(0.05)
    raise AssertionError(f"cannot read {db}")


def _training(study: Path, epochs: int) -> list[int]:
    """The RUNNING trials whose run has logged at least ``epochs`` epochs."""
    rows = _query(study / "study.db", "SELECT number FROM trials WHERE state = 'RUNNING'")
    found = []
    for (number,) in rows:
        metrics = study / "trials" / str(number) / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= epochs:
            found.append(number)
    return found


def _wait_for(study: Path, n: int, epochs: int, proc: subprocess.Popen) -> list[int]:
    """Wait until ``n`` trials are training, past ``epochs`` epochs; their numbers."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tune ended before the signal: {_log()[-2000:]}")
        if len(found := _training(study, epochs)) >= n:
            return found
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {n} trials training after 120 s: {_log()[-2000:]}")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the workers of a ``tune``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _states(study: Path) -> dict[int, str]:
    return dict(_query(study / "study.db", "SELECT number, state FROM trials"))


def _configs(study: Path) -> dict[int, tuple]:
    rows = _query(
        study / "study.db",
        "SELECT t.number, p.param_name, p.param_value FROM trials t "
        "JOIN trial_params p ON p.trial_id = t.trial_id",
    )
    out: dict[int, dict] = {}
    for number, name, value in rows:
        out.setdefault(number, {})[name] = value
    return {n: tuple(sorted(v.items())) for n, v in out.items()}


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_puts_the_running_trials_back_and_resume_completes_the_budget(runs_dir):
    Path("exp.toml").write_text(EXPERIMENT)
    study = Path("runs") / "sig"
    proc = _start("exp.toml", "--workers", "2", "--name", "sig")
    # both workers in the middle of a trial, past a checkpoint
    running = _wait_for(study, 2, 3, proc)
    drawn = _configs(study)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    sent = time.monotonic()
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - sent
    log = _log()
    # out within a few seconds (no minutes in SQLite's lock wait), every worker with it
    assert took < 10, f"{took:.1f} s to stop:\n{log[-2000:]}"
    assert code == 130, log[-2000:]
    assert _group_gone(proc.pid)
    assert "Traceback" not in log and "database is locked" not in log
    assert "continue with: trainwell tune --resume" in log
    states = _states(study)
    # the interrupted trials are back in the queue, not FAIL; nothing is left RUNNING (a trial
    # that reached its last epoch as the signal came may have completed in the meantime)
    interrupted = [n for n in running if states[n] == "WAITING"]
    assert interrupted and all(states[n] in ("WAITING", "COMPLETE") for n in running), states
    assert set(states.values()) <= {"COMPLETE", "WAITING"}, states
    fixed = dict(
        _query(
            study / "study.db",
            "SELECT t.number, a.value_json FROM trials t JOIN trial_system_attributes a "
            "ON a.trial_id = t.trial_id WHERE a.key = 'fixed_params'",
        )
    )
    for number in interrupted:  # each waits with the configuration it was drawn
        assert json.loads(fixed[number]).keys() == dict(drawn[number]).keys()

    resumed = subprocess.run(
        [sys.executable, "-m", "trainwell", "tune", "--resume", str(study)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    states = _states(study)
    assert sorted(states.values()) == ["COMPLETE"] * BUDGET, states  # N of N, nothing else
    configs = _configs(study)
    assert len(set(configs.values())) == BUDGET  # no configuration twice
    for number in running:
        assert configs[number] == drawn[number]  # run again with its own configuration
        run = study / "trials" / str(number)
        assert json.loads((run / "meta.json").read_text())["status"] == "completed"
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").open()]
        assert epochs == list(range(1, 13))  # resumed from its checkpoint, every epoch once


def test_a_killed_worker_leaves_no_trial_running_when_tune_ends(runs_dir):
    Path("exp.toml").write_text(EXPERIMENT)
    study = Path("runs") / "kill"
    proc = _start("exp.toml", "--workers", "2", "--name", "kill")
    _wait_for(study, 2, 2, proc)  # both workers in the middle of a trial
    workers = _children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = _log()
    assert code == 0, log[-2000:]
    # well before the heartbeat's grace period (61 s by default) could have noticed
    assert time.monotonic() - killed < 55
    states = _states(study)
    assert "RUNNING" not in states.values() and "WAITING" not in states.values(), states
    failed = [n for n, state in states.items() if state == "FAIL"]
    assert len(failed) == 1, states  # the killed worker's trial, and no other
    number = failed[0]
    assert list(states.values()).count("COMPLETE") == BUDGET  # the copy ran: budget complete
    copies = _query(
        study / "study.db",
        "SELECT t.number FROM trials t JOIN trial_system_attributes a "
        f"ON a.trial_id = t.trial_id WHERE a.key = 'failed_trial' AND a.value_json = '{number}'",
    )
    assert len(copies) == 1
    configs = _configs(study)
    assert configs[copies[0][0]] == configs[number]  # the same configuration, run again
    meta = json.loads((study / "trials" / str(number) / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["finished"]
    assert "died" in log

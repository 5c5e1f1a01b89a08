"""Shared test setup: one thread per test process (the suite runs on 2 cores with 2 workers)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))  # the suite's helper modules, e.g. sysdeps


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """A fresh folder to create run directories in; the test's cwd is its parent."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _trainwell_loggers_as_found():
    """Each test starts with trainwell's loggers as the previous one found them: a test that
    changes a level (caplog on a child logger, a command's ``-q``) cannot silence the epoch lines
    another test reads."""
    import logging

    import trainwell.train.progress  # noqa: F401  (installs the epoch lines' handler once)

    for name in list(logging.root.manager.loggerDict):  # a library's logging.config call
        if name == "trainwell" or name.startswith("trainwell."):  # (e.g. alembic's fileConfig)
            logging.getLogger(name).disabled = False  # disables every logger it does not name
    loggers = [logging.getLogger(n) for n in ("trainwell", "trainwell.progress")]
    saved = [(lg.level, lg.disabled, lg.propagate) for lg in loggers]
    yield
    for lg, (level, disabled, propagate) in zip(loggers, saved, strict=True):
        lg.setLevel(level)
        lg.disabled, lg.propagate = disabled, propagate

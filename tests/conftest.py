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
    """Each test starts with logging as a fresh process has it for trainwell, and leaves it as it
    found it: a test that changes a level (caplog on a child logger, a command's ``-q``), adds a
    handler to the epoch lines' logger, or leaves ``logging.disable`` set (pytest's caplog does
    when a logger was not enabled) cannot silence the lines another test reads."""
    import logging

    import trainwell.train.progress  # noqa: F401  (installs the epoch lines' handler once)

    logging.disable(logging.NOTSET)
    for name in list(logging.root.manager.loggerDict):  # a library's logging.config call
        if name == "trainwell" or name.startswith("trainwell."):  # (e.g. alembic's fileConfig)
            logging.getLogger(name).disabled = False  # disables every logger it does not name
    loggers = [logging.getLogger(n) for n in ("trainwell", "trainwell.progress")]
    saved = [(lg.level, lg.disabled, lg.propagate, list(lg.handlers)) for lg in loggers]
    yield
    for lg, (level, disabled, propagate, handlers) in zip(loggers, saved, strict=True):
        lg.setLevel(level)
        lg.disabled, lg.propagate, lg.handlers[:] = disabled, propagate, handlers
    logging.disable(logging.NOTSET)

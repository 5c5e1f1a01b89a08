"""Ctrl-C and SIGTERM in a study's processes: stop within seconds, never in the middle of a write
to the study's storage.

A terminal's Ctrl-C sends SIGINT to every process of the foreground group: ``trainwell tune``
and each of its workers. Python turns it into a ``KeyboardInterrupt`` wherever the process
happens to be, possibly inside SQLAlchemy between two statements of a transaction: the
connection was left holding SQLite's write lock, and every other connection, the worker's own
included, then waited out SQLite's lock timeout before failing with "database is locked".

:class:`StopSignals` installs handlers for SIGINT and SIGTERM that

* while the process trains a trial (:meth:`StopSignals.interruptible`), raise
  ``KeyboardInterrupt`` at once, unless the interrupted code is a storage call (SQLAlchemy,
  Optuna's storages, a database driver): then the interrupt is delivered again every 50 ms
  until the call has returned, so the interrupt lands between storage calls;
* anywhere else (claiming, drawing, recording a result) only remember the request: the worker
  checks :attr:`StopSignals.requested` at its safe points and stops there;
* once the interrupt was raised, ignore further signals while the worker puts its trial back
  in the queue (the parent process ends workers that take too long).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: modules whose code must not be interrupted half-way: storage calls and database drivers
STORAGE_MODULES = ("sqlalchemy", "optuna.storages", "sqlite3", "psycopg2", "psycopg", "_sqlite3")
#: seconds between two deliveries of an interrupt that arrived during a storage call
REDELIVER_S = 0.05
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def in_storage_call(frame: FrameType | None) -> bool:
    """Whether ``frame`` or one of its callers runs code of :data:`STORAGE_MODULES`."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith(STORAGE_MODULES):
            return True
        frame = frame.f_back
    return False


class StopSignals:
    """SIGINT / SIGTERM handling of a worker (see the module docstring); a context manager that
    installs the handlers in the main thread and restores the previous ones on exit (in another
    thread, where signals cannot be handled, it does nothing)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self._armed = False  # an interrupt may be raised now (the trial is training)
        self._raised = False  # the interrupt was raised: further signals are ignored
        self._timer: threading.Timer | None = None
        self._redelivering = False
        self._previous: dict[int, Any] = {}
        self._main: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._main = threading.get_ident()
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._armed = False
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """While inside, a stop signal raises ``KeyboardInterrupt`` (between storage calls);
        one that arrived before raises it on entry."""
        if self.requested and not self._raised:
            self._raised = True
            raise KeyboardInterrupt
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if not self._armed or self._raised:
            return
        if in_storage_call(frame):
            self._redeliver(signum)
            return
        self._armed = False
        self._raised = True
        raise KeyboardInterrupt

    def _redeliver(self, signum: int) -> None:
        if self._main is None or self._redelivering:
            return
        self._redelivering = True
        main = self._main

        def again() -> None:
            self._redelivering = False
            if self._armed and not self._raised:
                signal.pthread_kill(main, signum)

        self._timer = threading.Timer(REDELIVER_S, again)
        self._timer.daemon = True
        self._timer.start()


__all__ = ["REDELIVER_S", "SIGNALS", "STORAGE_MODULES", "StopSignals", "in_storage_call"]

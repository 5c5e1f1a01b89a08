"""One process trains in a run directory at a time.

``fit`` holds an exclusive ``flock`` on ``<run>/.lock`` from the moment the run directory exists
(it is taken on the staging folder, before the rename) until training ends. A second ``train
--resume`` of the same run is refused at once with the holder's pid, host and start time,
instead of interleaving ``metrics.jsonl`` and checkpoints. The lock is the kernel's: it goes
with the process that holds it, so a killed run never leaves a stale lock behind (the file
itself stays, and is overwritten by the next holder).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from trainwell.errors import RunError

LOCK_NAME = ".lock"

if sys.platform == "win32":  # pragma: no cover - runs are not locked there
    fcntl = None
else:
    import fcntl


class RunLock:
    """An exclusive lock on a run directory, as a context manager.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, RunLock(d):
        ...     pass
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a RunError naming the process that holds it."""
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(
                f"cannot lock the run directory {self.run_dir}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(
                f"run {self.run_dir} is in use by another process ({self.holder()}); wait for it "
                "to finish, or stop it, before resuming this run"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str:
        """Who holds the lock, in words (from the file the holder wrote)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {info['pid']} on {info['host']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not written its name yet"

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


__all__ = ["LOCK_NAME", "RunLock"]

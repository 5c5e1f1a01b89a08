"""System packages the tests need (Debian's Chromium and PostgreSQL), installed once, one
installer at a time.

Two test processes that both find a package missing (two pytest-xdist workers, or two suites
run at once) must not both run ``apt-get``: the second would lose dpkg's lock and fail. So
:func:`ensure` takes an exclusive lock on :data:`LOCK_PATH` before installing, looks for the
binaries again once it holds the lock (the process before it may have installed them), and
only then runs ``apt-get update`` and ``apt-get install``. A test that needs a package calls
:func:`ensure` from its fixture; ``make test`` runs this file first (``python tests/sysdeps.py``)
so that the packages are there before the workers start.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

LOCK_PATH = Path(tempfile.gettempdir()) / "trainwell-test-sysdeps.lock"
LOCK_WAIT_S = 1800.0  # the longest wait for another process's install
APT_TIMEOUT_S = 1200  # one apt-get command at most
APT_OPTIONS = ["-o", "DPkg::Lock::Timeout=600"]  # wait for an apt run that is not ours


class MissingSystemPackage(RuntimeError):
    """A package the tests need is missing and cannot be installed here."""


@dataclass(frozen=True)
class SystemPackages(Generic[T]):
    """What the tests need: Debian's ``packages``, present when ``find()`` returns non-None."""

    name: str
    packages: tuple[str, ...]
    find: Callable[[], T | None]


def find_chromium() -> tuple[str, str] | None:
    """The paths of the browser and of ``chromedriver``, or None if either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def find_postgres() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl`` (on PATH, else Debian's newest), or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    folders = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    folders = [f for f in folders if (f / "initdb").is_file()]
    return max(folders, key=lambda f: _version(f.parent.name)) if folders else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


# fonts-liberation (Chromium's own recommendation) gives pages the same text metrics everywhere
CHROMIUM: SystemPackages[tuple[str, str]] = SystemPackages(
    "Chromium", ("chromium", "chromium-driver", "fonts-liberation"), find_chromium)
POSTGRESQL: SystemPackages[Path] = SystemPackages("PostgreSQL", ("postgresql",), find_postgres)
ALL: tuple[SystemPackages, ...] = (CHROMIUM, POSTGRESQL)


@contextlib.contextmanager
def exclusive_lock(path: Path | None = None, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (default :data:`LOCK_PATH`, made if missing)
    inside the block.

    The lock belongs to the open file: a process that dies releases it, so no stale lock
    file ever blocks the next run.
    """
    path = path or LOCK_PATH
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MissingSystemPackage(
                        f"waited {wait_s:.0f} s for another process installing system packages "
                        f"(lock {path}); try again when it has finished") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def can_install() -> bool:
    """Whether this process may install Debian packages (root, with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt(args: list[str]) -> None:
    cmd = ["apt-get", *APT_OPTIONS, *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    if res.returncode != 0:
        raise MissingSystemPackage(
            f"{' '.join(cmd)} failed (exit {res.returncode}): {res.stderr.strip()[-800:]}")


def ensure(need: SystemPackages[T], log: Callable[[str], None] | None = None) -> tuple[T, bool]:
    """``need.find()``'s result, installing ``need.packages`` first when it finds nothing.

    Returns:
        the result and whether this call installed the packages.

    Raises:
        MissingSystemPackage: the packages are missing and this is not root with ``apt-get``,
            or the install failed (the message says which command and why).
    """
    found = need.find()
    if found is not None:
        return found, False
    install = " ".join(need.packages)
    if not can_install():
        raise MissingSystemPackage(
            f"{need.name} is missing and installing it needs root and apt-get: run "
            f"'apt-get install -y --no-install-recommends {install}' as root")
    with exclusive_lock():
        found = need.find()  # installed by whoever held the lock before us
        if found is not None:
            return found, False
        if log is not None:
            log(f"{need.name} is missing: installing Debian's {install} with apt-get")
        _apt(["update", "-q"])
        _apt(["install", "-y", "-q", "--no-install-recommends", *need.packages])
        found = need.find()
    if found is None:
        raise MissingSystemPackage(
            f"apt-get installed {install}, but {need.name}'s programs are still not found")
    return found, True


def main() -> int:
    """Install every package the suite needs that is missing; say what was done."""
    for need in ALL:
        try:
            found, installed = ensure(need, log=lambda msg: print(msg, flush=True))
        except MissingSystemPackage as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{need.name}: {'installed' if installed else 'present'} ({found})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures of the tuning tests: a real PostgreSQL server, started once per session.

The server comes from Debian's ``postgresql`` package. When ``initdb`` / ``pg_ctl`` are
missing the fixture installs the package (as root, one process at a time:
:func:`sysdeps.ensure`) and says so; when that is impossible the test fails with the reason (it
is never skipped). As root, the server runs as the ``postgres`` user, listening on a Unix socket
in a private folder only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest
import sysdeps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A SQLAlchemy URL of a fresh PostgreSQL server, stopped at the end of the session."""
    try:
        bindir, installed = sysdeps.ensure(sysdeps.POSTGRESQL)
    except sysdeps.MissingSystemPackage as exc:
        pytest.fail(f"PostgreSQL test: {exc}")
    if installed:  # pytest captures the fixture's print; a warning shows in the run's summary
        warnings.warn(
            "PostgreSQL was missing: installed Debian's postgresql package with apt-get",
            UserWarning,
            stacklevel=1,
        )
    root = Path(tempfile.mkdtemp(prefix="trainwell-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    user = os.environ.get("USER") or "postgres"
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
        import pwd

        pw = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
        user = "postgres"
    port = _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)

    res = run(str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync")
    if res.returncode != 0:
        pytest.fail(f"PostgreSQL test: initdb failed: {res.stderr.strip()[-500:]}")
    opts = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off -c max_connections=50"
    res = run(
        str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"
    )
    if res.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        pytest.fail(
            f"PostgreSQL test: pg_ctl start failed: {res.stderr.strip()[-300:]} {log[-500:]}"
        )
    try:
        yield f"postgresql+psycopg2://{user}@/postgres?host={sock}&port={port}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)

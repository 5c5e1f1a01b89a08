"""The installer of the suite's system packages: one install at a time, never a second one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sysdeps

# A package that is "installed" when a marker file exists; the install takes a while and
# records when it starts and ends, so that overlapping installs would show.
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import sysdeps

    folder = Path(sys.argv[2])
    sysdeps.LOCK_PATH = folder / "lock"
    sysdeps.can_install = lambda: True
    marker, log = folder / "installed", folder / "log"

    def apt(args):
        with open(log, "a") as fh:
            fh.write(f"{args[0]} start {time.monotonic()}\\n")
        time.sleep(0.4)
        if args[0] == "install":
            marker.write_text("yes")
        with open(log, "a") as fh:
            fh.write(f"{args[0]} end {time.monotonic()}\\n")

    sysdeps._apt = apt
    need = sysdeps.SystemPackages("Fake", ("fake",), lambda: marker if marker.exists() else None)
    (folder / f"ready-{sys.argv[3]}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    found, installed = sysdeps.ensure(need)
    print(found.name, installed)
""")


def test_processes_that_all_miss_a_package_install_it_once(tmp_path):
    here = str(Path(sysdeps.__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, here, str(tmp_path), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all three look for the package at the same moment
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == [
        "installed False", "installed False", "installed True"]
    steps = [line.split()[:2] for line in (tmp_path / "log").read_text().splitlines()]
    assert steps == [["update", "start"], ["update", "end"], ["install", "start"],
                     ["install", "end"]]


def test_a_present_package_takes_no_lock_and_installs_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sysdeps, "LOCK_PATH", tmp_path / "lock")
    monkeypatch.setattr(sysdeps, "_apt", lambda args: pytest.fail("apt-get ran"))
    need = sysdeps.SystemPackages("Fake", ("fake",), lambda: "here")
    assert sysdeps.ensure(need) == ("here", False)
    assert not (tmp_path / "lock").exists()


def test_without_root_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setattr(sysdeps, "can_install", lambda: False)
    need = sysdeps.SystemPackages("Fake", ("fake-a", "fake-b"), lambda: None)
    with pytest.raises(sysdeps.MissingSystemPackage, match=(
            "Fake is missing and installing it needs root and apt-get: run 'apt-get install "
            "-y --no-install-recommends fake-a fake-b' as root")):
        sysdeps.ensure(need)


def test_apt_get_commands_and_their_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(sysdeps, "LOCK_PATH", tmp_path / "lock")
    monkeypatch.setattr(sysdeps, "can_install", lambda: True)
    ran = []

    def run(cmd, **kwargs):
        ran.append(cmd)
        assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        failed = cmd[-1] == "fake-b"
        return subprocess.CompletedProcess(cmd, 100 if failed else 0, "", "E: no fake-b")

    monkeypatch.setattr(sysdeps.subprocess, "run", run)
    need = sysdeps.SystemPackages("Fake", ("fake-a", "fake-b"), lambda: None)
    with pytest.raises(sysdeps.MissingSystemPackage, match=r"install .* fake-a fake-b failed "
                       r"\(exit 100\): E: no fake-b"):
        sysdeps.ensure(need)
    assert [c[3:] for c in ran] == [["update", "-q"], ["install", "-y", "-q",
                                                        "--no-install-recommends", "fake-a",
                                                        "fake-b"]]
    assert all(c[:3] == ["apt-get", "-o", "DPkg::Lock::Timeout=600"] for c in ran)

    need = sysdeps.SystemPackages("Fake", ("fake-a",), lambda: None)
    with pytest.raises(sysdeps.MissingSystemPackage, match="programs are still not found"):
        sysdeps.ensure(need)


def test_the_real_packages_are_named_as_debian_names_them():
    assert sysdeps.CHROMIUM.packages[:2] == ("chromium", "chromium-driver")
    assert sysdeps.POSTGRESQL.packages == ("postgresql",)
    assert sysdeps.LOCK_PATH.parent == Path(sysdeps.tempfile.gettempdir())

"""Process-wide state belongs to the program: the library leaves the garbage collector, the
umask and ``atexit`` alone; only the ``trainwell`` command (``cli.run``) uses them.

Each check runs in a fresh interpreter, so that the first import of every module is seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# Spies on every function that changes the collector, the umask or the exit handlers: a call
# from a trainwell module is recorded (with the module), then passed on.
PRELUDE = textwrap.dedent("""
    import atexit, gc, json, os, sys

    touched = []

    def spy(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller == "trainwell" or caller.startswith("trainwell."):
                touched.append(f"{module.__name__}.{name} from {caller}")
            return real(*args, **kwargs)

        setattr(module, name, wrapper)

    for name in ("disable", "enable", "freeze", "unfreeze", "set_threshold"):
        spy(gc, name)
    spy(os, "umask")
    spy(atexit, "register")

    def umask():
        for line in open("/proc/self/status"):
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)

    os.umask(0o027)  # not the usual 0o022: what the library creates must follow it
    # the libraries that register exit handlers of their own do so on import
    import logging, multiprocessing.util, torch, pandas, sklearn.preprocessing, matplotlib.figure
    before = {"gc": gc.isenabled(), "frozen": gc.get_freeze_count(), "umask": umask(),
              "handlers": atexit._ncallbacks()}
""")

REPORT = textwrap.dedent("""
    after = {"gc": gc.isenabled(), "frozen": gc.get_freeze_count(), "umask": umask(),
             "handlers": atexit._ncallbacks()}
    print("STATE " + json.dumps({"before": before, "after": after, "touched": touched}))
""")


def _run(body: str, cwd: Path, *args: str) -> tuple[dict, str]:
    """Run PRELUDE + ``body`` in a fresh interpreter; the state before and after, and stdout."""
    script = PRELUDE + textwrap.dedent(body) + REPORT
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("STATE "))
    return json.loads(line.removeprefix("STATE ")), out.stdout


def _modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mode & 0o777 for p in root.rglob("*")}


def _iris(tmp_path: Path) -> Path:
    cfg = tmp_path / "iris.toml"
    cfg.write_text('[data]\nsource = "builtin:iris"\n[train]\nepochs = 2\nbatch_size = 32\n')
    return cfg


def test_library_entry_points_leave_gc_umask_and_atexit_alone(tmp_path):
    _iris(tmp_path)
    state, _ = _run("""
        import numpy as np
        import trainwell
        from trainwell.report import write_run_report
        from trainwell.tune import tune

        run = trainwell.fit("iris.toml", name="r", quiet=True)  # writes report.html too
        trainwell.load(run.run_dir).predict(np.ones((2, 4), dtype=np.float32))
        write_run_report(run.run_dir, "again.html")
        tune({"data": {"source": "builtin:iris"}, "train": {"epochs": 1},
              "tune": {"method": "random", "trials": 2,
                       "space": {"train.optimizer.lr": "loguniform(1e-3, 1e-1)"}}}, name="study")
    """, tmp_path)
    assert state["touched"] == []
    assert state["after"] == state["before"]
    assert state["after"]["gc"] and state["after"]["umask"] == 0o027
    # every file and folder the runs made has the mode the umask gives, as open() and mkdir do
    modes = _modes(tmp_path / "runs")
    assert modes["r"] == 0o750 and modes["r/report.html"] == 0o640
    assert set(modes.values()) <= {0o750, 0o640}, modes
    assert (tmp_path / "again.html").stat().st_mode & 0o777 == 0o640


def test_the_command_freezes_its_libraries_and_trains_with_the_collector_on(tmp_path):
    """In the command's process the libraries load with the collector off and are then frozen,
    and training runs with it on; the same ``main`` called from Python touches nothing."""
    cfg = _iris(tmp_path)
    body = """
        import trainwell.api as api
        import trainwell.cli as cli

        class Probe:
            def before_fit(self, trainer):
                print("training with gc", gc.isenabled(), "frozen", gc.get_freeze_count() > 0)

        fit = api.fit
        api.fit = lambda *a, **k: fit(*a, **{**k, "callbacks": [Probe()]})
        cli.command_process = sys.argv[1] == "command"
        print("rc", cli.main(sys.argv[2:]))
        """
    state, out = _run(body, tmp_path, "command", "train", str(cfg), "--quiet", "--name", "a")
    assert state["touched"] == [f"gc.{f} from trainwell.cli" for f in ("disable", "freeze",
                                                                         "enable")]
    assert "training with gc True frozen True" in out and "rc 0" in out
    assert state["after"]["gc"] and state["after"]["frozen"] > state["before"]["frozen"]
    assert state["after"]["umask"] == state["before"]["umask"]
    assert _modes(tmp_path / "runs")["a"] == 0o750

    state, out = _run(body, tmp_path, "python", "train", str(cfg), "--quiet", "--name", "b")
    assert state["touched"] == [] and state["after"] == state["before"]
    assert "training with gc True frozen False" in out and "rc 0" in out

    # a bad config is refused before any library loads: nothing is frozen
    state, out = _run(body, tmp_path, "command", "train", str(tmp_path / "none.toml"))
    assert state["touched"] == [] and "rc 2" in out


def test_the_trainwell_command_trains(tmp_path):
    cfg = _iris(tmp_path)
    out = subprocess.run([sys.executable, "-m", "trainwell", "train", str(cfg), "--quiet",
                          "--name", "c"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "run runs/c: best epoch" in out.stdout
    assert (tmp_path / "runs" / "c" / "report.html").is_file()

"""Benchmark of the samplers: simple regret on Branin and Hartmann-6, best validation log-loss
of an MLP on digits; median and quartiles over seeds, seed-paired win rate against Optuna's
GPSampler, and each sampler's own time per trial.

    OMP_NUM_THREADS=1 python benchmarks/tuning.py --seeds 20 --real-seeds 10 --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --problems branin,hartmann6   # synthetic only
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --parallel   # 2 workers: duplicates, regret

    OMP_NUM_THREADS=1 python benchmarks/tuning.py --interrupts 5   # Ctrl-C, then --resume

``--parallel`` runs whole studies with ``trainwell.tune`` (SQLite storage, worker processes)
on Branin through two config fields: it counts the trials that got a configuration another
trial of their study already had, in fresh 2-worker studies and in studies resumed with 2
workers after 4 trials by one, and compares the regret of 1 and 2 workers at equal trials.

``--interrupts N`` runs ``trainwell tune --workers 2`` N times (12 trials training a small
network on iris), sends it Ctrl-C (SIGINT to its process group, as a terminal does) at a
different point of each run, then ``trainwell tune --resume``: it prints how long the command
took to stop, and how many trials of the budget were completed in the end, without a repeat.

``--suite`` is the broad suite: the regret (value minus the known optimum) of ten standard test
functions from 2 to 10 dimensions, chosen from the Virtual Library of Simulation Experiments
(VLSE, Surjanovic and Bingham) and BBOB/COCO (Hansen et al.) so that no one property decides
the ranking:

* ``branin`` (2-d, VLSE): smooth, three global minima; the old benchmark's cell;
* ``camel`` (2-d, VLSE six-hump camel): two global and four local minima, a steep rim;
* ``hartmann3`` (3-d, VLSE): four local minima, the optimum near the box's edge;
* ``rosenbrock4`` (4-d, VLSE / BBOB f8): an ill-conditioned curved valley, values over six
  decades (a heavy tail);
* ``step5`` (5-d, BBOB f7 step ellipsoid, unrotated): plateaus, zero gradient almost
  everywhere, 1:100 conditioning;
* ``mixed5`` (5-d): Styblinski-Tang (VLSE) on 3 floats, an integer in [-5, 5] and a 4-way
  categorical that moves the optimum and offsets the value: a space like a network's;
* ``hartmann6`` (6-d, VLSE): six local minima; the old benchmark's cell;
* ``hartmann6-noisy``: the same observed with Gaussian noise (sd 0.1, about 3% of its range);
  the regret is the noiseless value's, of the trial with the best observed value (the one a
  user would pick);
* ``levy8`` (8-d, VLSE): multimodal around a broad basin;
* ``ackley10`` (10-d, VLSE): a nearly flat outer region around a narrow funnel.

    OMP_NUM_THREADS=1 python benchmarks/tuning.py --suite --seeds 20 --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --suite --table-only   # reprint the tables
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --suite --functions branin,hartmann6 \
        --workers 1,2,4 --budgets 20,40 --suite-samplers trainwell   # K simulated workers

Contestants (``--suite-samplers``): ``trainwell`` (the default ``bayes``), ``trainwell-v0`` (the
default before the suite: ``warp``, the trust region and the noise level off, the kernel
refitted at every step), ``gp``, ``tpe``, ``random``, ``botorch`` (BoTorch's
LogEI through optuna-integration, where both are installed) and ``bayes:key=value+...``
(``BayesSampler`` with those arguments, for trying a change). Each (function, sampler, seed)
runs once, to the largest of ``--budgets`` (20, 50, 100); the regret at each budget is the best
so far after that many trials. Every contestant is a sequential sampler that does not know the
budget, so this equals separate runs at each budget. Each run is appended as one JSON line to
``--cache``; ``--resume`` runs only what the cache lacks, ``--table-only`` prints the tables
from it. A table per budget gives, per function and sampler: the median and quartiles over
seeds, the median's ratio to the best peer's (the best median of GPSampler, TPE, BoTorch), the
seed-paired win rate against GPSampler (ties count a half) and the sampler's CPU milliseconds
per trial, over the budget's trials and over its last 10 (``ms@last10``: trials 41-50 at 50
trials, where the GP is largest); then the issue's targets, met or not. ``--workers 1,2,4``
simulates K workers in one process: K trials are started one after another (each drawn while
the others are RUNNING with their parameters, as a study's workers see them), then their values
are told; the table gives the median regret at K workers against one at equal trials.

The samplers do not know the budget, so the result at 20 trials is read from the first 20
trials of each 50-trial run. "time/trial" is the time spent inside the sampler (search-space
inference and sampling; CPU seconds of its one thread), measured by a wrapper, averaged over the
run; "t@41-50" is the same
over trials 41-50, where the GP is largest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

# the benchmark's sampler names and the tune.method each one is made by (trainwell's registry)
SAMPLERS = {
    "trainwell": "bayes",
    "trainwell-ucb": "ucb",
    "trainwell-ei": "ei",
    "gp": "gp",
    "tpe": "tpe",
    "random": "random",
}
LABELS = {
    "trainwell": "trainwell bayes (default)",
    "trainwell-ucb": "trainwell ucb (lecture: 0.8^t)",
    "trainwell-ei": "trainwell ei",
    "gp": "optuna GPSampler",
    "tpe": "optuna TPE",
    "random": "random",
}
# Branin and Hartmann-6 live with the tests' objectives (tests/tune/synthetic.py)
SYNTHETIC = Path(__file__).resolve().parents[1] / "tests" / "tune" / "synthetic.py"


def make_sampler(name: str, seed: int) -> Any:
    """The sampler ``name`` as ``trainwell tune`` makes it, with ``[tune]``'s defaults."""
    from trainwell.search.config import TuneConfig
    from trainwell.search.samplers import make_sampler as make

    if name not in SAMPLERS:
        raise SystemExit(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return make(TuneConfig(), seed, SAMPLERS[name])


def _synthetic() -> Any:
    if str(SYNTHETIC.parent) not in sys.path:
        sys.path.insert(0, str(SYNTHETIC.parent))
    import synthetic

    return synthetic


def _branin(x1: float, x2: float) -> float:
    return float(_synthetic().branin(x1, x2))


def _hartmann6(x: np.ndarray) -> float:
    return float(_synthetic().hartmann6(x))


def problems() -> dict[str, Any]:
    """The synthetic problems by name, from the tests' module (imported from its folder)."""
    if str(SYNTHETIC.parent) not in sys.path:
        sys.path.insert(0, str(SYNTHETIC.parent))
    import synthetic

    return dict(synthetic.PROBLEMS)


def timed(sampler: Any) -> Any:
    """The sampler with its own time per trial recorded (``sampler.times[trial.number]``), as
    the CPU time of the calling thread: on one thread that is the wall-clock time of an idle
    machine, and other processes on a busy one do not inflate it."""
    import optuna

    class Timed(optuna.samplers.BaseSampler):
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.times: dict[int, float] = {}

        def _add(self, number: int, t0: float) -> None:
            self.times[number] = self.times.get(number, 0.0) + time.thread_time() - t0

        def infer_relative_search_space(self, study, trial):  # noqa: ANN001, ANN201
            t0 = time.thread_time()
            out = self.inner.infer_relative_search_space(study, trial)
            self._add(trial.number, t0)
            return out

        def sample_relative(self, study, trial, space):  # noqa: ANN001, ANN201
            t0 = time.thread_time()
            out = self.inner.sample_relative(study, trial, space)
            self._add(trial.number, t0)
            return out

        def sample_independent(self, study, trial, name, dist):  # noqa: ANN001, ANN201
            t0 = time.thread_time()
            out = self.inner.sample_independent(study, trial, name, dist)
            self._add(trial.number, t0)
            return out

        def before_trial(self, study, trial):  # noqa: ANN001, ANN201
            self.inner.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # noqa: ANN001, ANN201
            self.inner.after_trial(study, trial, state, values)

    return Timed(sampler)


# ---------------------------------------------------------------------------- the real objective

_DIGITS: Any = None


def _digits() -> Any:
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        X, y = load_digits(return_X_y=True)
        Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        sc = StandardScaler().fit(Xtr)
        _DIGITS = (sc.transform(Xtr), sc.transform(Xva), ytr, yva)
    return _DIGITS


def digits_objective(trial: Any, epochs: int) -> float:
    """Validation log-loss of trainwell's MLP (NetClassifier) on digits; seeded, so repeatable."""
    import logging

    from sklearn.metrics import log_loss

    from trainwell.tune.estimator import NetClassifier

    logging.getLogger("trainwell").setLevel(logging.ERROR)
    Xtr, Xva, ytr, yva = _digits()
    model = NetClassifier(
        hidden=(trial.suggest_int("width", 16, 256, log=True),),
        lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        epochs=epochs,
        batch_size=128,
        random_state=0,
    ).fit(Xtr, ytr)
    return float(log_loss(yva, model.predict_proba(Xva), labels=list(range(10))))


# ---------------------------------------------------------------------------- one run


def run_one(job: tuple[str, str, int, int, int]) -> tuple[str, str, int, np.ndarray, np.ndarray]:
    """(problem, sampler, seed) -> best-so-far values and per-trial sampler times."""
    problem, name, seed, n_trials, epochs = job
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = timed(make_sampler(name, seed))
    study = optuna.create_study(sampler=sampler)
    if problem == "digits":
        study.optimize(lambda t: digits_objective(t, epochs), n_trials=n_trials)
        offset = 0.0
    else:
        p = problems()[problem]
        study.optimize(p.objective, n_trials=n_trials)
        offset = p.optimum
    values = np.array([t.value for t in study.trials]) - offset
    times = np.array([sampler.times.get(i, 0.0) for i in range(n_trials)])
    return problem, name, seed, np.minimum.accumulate(values), times


# ---------------------------------------------------------------------------- parallel workers


def _unit(params: dict[str, Any], space: list[Any]) -> tuple[float, ...]:
    """A configuration as a point of the unit cube (log scale for log parameters)."""
    import math

    out = []
    for p in space:
        lo, hi = p.bounds
        f = math.log if p.log else float
        out.append((f(params[p.path]) - f(lo)) / (f(hi) - f(lo)))
    return tuple(out)


def duplicates(trials: list[Any], space: list[Any], tol: float = 1e-6) -> int:
    """Trials whose configuration is within ``tol`` (max-norm, unit cube) of an earlier one's."""
    seen: list[tuple[float, ...]] = []
    count = 0
    for t in sorted(trials, key=lambda t: t.number):
        x = _unit(t.params, space)
        count += any(max(abs(a - b) for a, b in zip(x, y, strict=True)) <= tol for y in seen)
        seen.append(x)
    return count


def _study(root: Path, name: str, seed: int, trials: int, workers: int) -> Any:
    from trainwell.tune.study import tune

    problems()  # the objectives' folder on sys.path, for the forked workers too
    import synthetic

    cfg = {
        "name": name,
        "runs_dir": str(root),
        "log": {"report": False},
        "tune": {
            "method": "bayes",
            "trials": trials,
            "seed": seed,
            "space": synthetic.BRANIN_SPACE,
            "pruner": {"name": "none"},
        },
    }
    return tune(cfg, objective="synthetic:branin_config", workers=workers, name=name)


def parallel(seeds: int, trials: int, regret_trials: int) -> str:
    """Duplicates in fresh and resumed 2-worker studies; regret of 1 and 2 workers."""
    import logging
    import tempfile

    import optuna

    problems()
    import synthetic

    from trainwell.search.space import parse_space
    from trainwell.tune.study import tune

    logging.getLogger("trainwell").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = parse_space(synthetic.BRANIN_SPACE)
    optimum = synthetic.PROBLEMS["branin"].optimum
    dup: dict[str, list[int]] = {"fresh": [], "resumed": []}
    regret: dict[int, list[float]] = {1: [], 2: []}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="tuning-parallel-") as tmp:
        root = Path(tmp)
        for seed in range(seeds):
            fresh = _study(root, f"fresh-{seed}", seed, trials, 2)
            dup["fresh"].append(duplicates(fresh.optuna_study.trials, space))
            first = _study(root, f"resumed-{seed}", seed, 4, 1)
            again = tune(
                None,
                resume=first.dir,
                sets=[f"tune.trials={trials}"],
                objective="synthetic:branin_config",
                workers=2,
            )
            dup["resumed"].append(duplicates(again.optuna_study.trials, space))
            for workers in (1, 2):
                s = _study(root, f"regret-{workers}-{seed}", seed, regret_trials, workers)
                regret[workers].append(float(s.best_value) - optimum)
    lines = [
        f"# parallel workers: {seeds} fresh and {seeds} resumed 2-worker studies of {trials} "
        f"trials (bayes, Branin through two config fields) in {time.time() - t0:.0f} s",
    ]
    for kind, counts in dup.items():
        lines.append(
            f"duplicates, {kind:<7}: {sum(counts)} of {seeds * trials} trials, in "
            f"{sum(c > 0 for c in counts)} of {seeds} studies"
        )
    med = {w: float(np.median(v)) for w, v in regret.items()}
    ratio = med[2] / med[1] if med[1] > 0 else float("inf")
    lines.append(
        f"regret at {regret_trials} trials, median of {seeds} seeds: 1 worker {med[1]:.4g}, "
        f"2 workers {med[2]:.4g}; 2 workers / 1 worker = {ratio:.2f} (target <= 1.2)"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- Ctrl-C and resume

INTERRUPTED = """
name = "ctrl-c"
seed = {seed}
[data]
source = "builtin:iris"
[model]
hidden = [16]
[train]
epochs = 12
batch_size = 16
checkpoint_every = 2
[log]
report = false
[tune]
method = "random"
trials = {trials}
[tune.pruner]
name = "none"
[tune.space]
"train.optimizer.lr" = "loguniform(1e-3, 1e-1)"
"model.dropout" = "uniform(0, 0.5)"
"""


def _db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3

    if not db.is_file():
        return []
    for _ in range(100):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            time.sleep(0.05)
    raise RuntimeError(f"cannot read {db}")


def interrupts(tries: int, trials: int = 12) -> str:
    """Ctrl-C on ``trainwell tune --workers 2``, then ``--resume``: per try, the time to stop,
    the exit codes, and the trials completed of the budget (see the module docstring)."""
    import signal
    import subprocess
    import tempfile

    lines = [f"# Ctrl-C on `trainwell tune --workers 2` ({trials} trials), then --resume"]
    complete_tries, worst = 0, 0.0
    for i in range(tries):
        with tempfile.TemporaryDirectory(prefix="tuning-ctrl-c-") as tmp:
            root = Path(tmp)
            (root / "exp.toml").write_text(INTERRUPTED.format(seed=i, trials=trials))
            db = root / "runs" / "s" / "study.db"
            cmd = [sys.executable, "-m", "trainwell", "tune"]
            proc = subprocess.Popen(
                [*cmd, "exp.toml", "--workers", "2", "--name", "s"],
                cwd=root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            done_before = i % 4  # a different moment of the study each time
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                states = [s for (s,) in _db_rows(db, "SELECT state FROM trials")]
                if states.count("COMPLETE") >= done_before and states.count("RUNNING") >= 2:
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # inside the trials
            os.killpg(proc.pid, signal.SIGINT)
            t0 = time.monotonic()
            try:
                code = proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
            stop_s = time.monotonic() - t0
            worst = max(worst, stop_s)
            after = dict(_db_rows(db, "SELECT number, state FROM trials"))
            resumed = subprocess.run(
                [*cmd, "--resume", str(Path("runs") / "s")],
                cwd=root,
                capture_output=True,
                timeout=900,
            )
            states = [s for (s,) in _db_rows(db, "SELECT state FROM trials")]
            params = _db_rows(
                db,
                "SELECT t.number, p.param_name, p.param_value FROM trials t "
                "JOIN trial_params p ON p.trial_id = t.trial_id",
            )
            configs: dict[int, list[tuple[str, float]]] = {}
            for number, name, value in params:
                configs.setdefault(number, []).append((name, value))
            distinct = len({tuple(sorted(c)) for c in configs.values()})
            n = states.count("COMPLETE")
            complete_tries += n == trials and distinct == len(configs) == len(states)
            lines.append(
                f"try {i + 1}: stopped in {stop_s:.1f} s (exit {code}; at the stop "
                f"{list(after.values()).count('COMPLETE')} complete, "
                f"{list(after.values()).count('WAITING')} queued, "
                f"{list(after.values()).count('FAIL')} failed); after --resume (exit "
                f"{resumed.returncode}): {n} of {trials} complete, {len(states) - n} other "
                f"trials, {len(configs) - distinct} repeated configurations"
            )
    lines.append(
        f"budget completed exactly, no repeat: {complete_tries} of {tries} tries; "
        f"slowest stop {worst:.1f} s"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- table


def summarize(
    results: list[tuple[str, str, int, np.ndarray, np.ndarray]], budgets: dict[str, list[int]]
) -> str:
    by: dict[tuple[str, str], dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for problem, name, seed, best, times in results:
        by.setdefault((problem, name), {})[seed] = (best, times)
    lines = [
        f"{'problem':<10} {'trials':>6}  {'sampler':<31} {'median':>10} {'q25':>10} {'q75':>10} "
        f"{'win vs gp':>9} {'time/trial':>10} {'t@41-50':>8}",
    ]
    for problem, ns in budgets.items():
        names = [n for n in SAMPLERS if (problem, n) in by]
        for n in ns:
            for name in names:
                runs = by[(problem, name)]
                vals = np.array([runs[s][0][n - 1] for s in sorted(runs)])
                q25, med, q75 = np.percentile(vals, [25, 50, 75])
                win = ""
                if name != "gp" and (problem, "gp") in by:
                    gp = by[(problem, "gp")]
                    common = sorted(set(runs) & set(gp))
                    a = np.array([runs[s][0][n - 1] for s in common])
                    b = np.array([gp[s][0][n - 1] for s in common])
                    win = f"{(np.sum(a < b) + 0.5 * np.sum(a == b)) / len(common):.2f}"
                t_all = np.mean([runs[s][1][:n].mean() for s in runs])
                t_late = (
                    np.mean([runs[s][1][40:50].mean() for s in runs]) if n >= 50 else float("nan")
                )
                late = f"{t_late * 1e3:6.1f}ms" if n >= 50 else ""
                lines.append(
                    f"{problem:<10} {n:>6}  {LABELS[name]:<31} {med:>10.3g} {q25:>10.3g} "
                    f"{q75:>10.3g} "
                    f"{win:>9} {t_all * 1e3:>8.1f}ms {late:>8}"
                )
        lines.append("")
    return "\n".join(lines)



# ---------------------------------------------------------------------------- the broad suite


def _hartmann(alpha: np.ndarray, a: np.ndarray, p: np.ndarray, x: np.ndarray) -> float:
    inner = (a * (np.asarray(x, dtype=float)[None, :] - p) ** 2).sum(axis=1)
    return float(-(alpha * np.exp(-inner)).sum())


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(x: np.ndarray) -> float:
    """Hartmann-3 on [0, 1]^3; minimum -3.86278 at (0.114614, 0.555649, 0.852547)."""
    return _hartmann(_ALPHA, _H3_A, _H3_P, x)


def camel(x: np.ndarray) -> float:
    """Six-hump camel on [-3, 3] x [-2, 2]; two minima of -1.0316285 at +-(0.0898, -0.7126)."""
    a, b = float(x[0]), float(x[1])
    return (4 - 2.1 * a**2 + a**4 / 3) * a**2 + a * b + (-4 + 4 * b**2) * b**2


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock on [-5, 10]^d; minimum 0 at (1, ..., 1), at the end of a curved valley."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def ackley(x: np.ndarray) -> float:
    """Ackley on [-32.768, 32.768]^d; minimum 0 at the origin, among a lattice of local minima."""
    x = np.asarray(x, dtype=float)
    d = len(x)
    return float(
        -20 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
        - np.exp(np.sum(np.cos(2 * np.pi * x)) / d)
        + 20
        + np.e
    )


def levy(x: np.ndarray) -> float:
    """Levy on [-10, 10]^d; minimum 0 at (1, ..., 1)."""
    w = 1 + (np.asarray(x, dtype=float) - 1) / 4
    head = np.sin(np.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2)
    return float(head + mid + tail)


#: where BBOB's step ellipsoid has its minimum here (BBOB draws it per instance)
_STEP_XOPT = np.array([1.7, -2.3, 0.6, 3.1, -1.2])


def step_ellipsoid(x: np.ndarray) -> float:
    """BBOB f7, the step ellipsoid (without BBOB's rotations and penalty), on [-5, 5]^5:
    ``0.1 max(|z1| / 1e4, sum_i 100^((i-1)/(d-1)) z_i^2)`` with ``z`` the shifted point rounded
    to integers (to tenths within 0.5 of the optimum): flat plateaus, ill-conditioned (1:100);
    minimum 0 around ``_STEP_XOPT``."""
    z = 10 * (np.asarray(x, dtype=float) - _STEP_XOPT)
    zr = np.where(np.abs(z) > 0.5, np.floor(0.5 + z), np.floor(0.5 + 10 * z) / 10)
    d = len(zr)
    cond = 100.0 ** (np.arange(d) / (d - 1))
    return float(0.1 * max(abs(zr[0]) / 1e4, float(np.sum(cond * zr**2))))


def styblinski_tang(x: np.ndarray) -> float:
    """Styblinski-Tang ``sum (x^4 - 16 x^2 + 5 x) / 2``; minimum -39.16617 d at x_i = -2.903534."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(x**4 - 16 * x**2 + 5 * x) / 2)


#: the mixed problem's categorical choice: (shift of the float optimum, offset of the value)
_MIXED = {"a": (0.0, 6.0), "b": (1.0, 0.0), "c": (-1.5, 3.0), "d": (0.5, 10.0)}


@dataclass(frozen=True)
class SuiteFunction:
    """A minimization problem of the suite: its space, its noiseless value, its optimum."""

    name: str
    dim: int
    optimum: float
    why: str
    func: Any = None  # x -> value, for box-bounded floats
    bounds: tuple[float, float] = (0.0, 1.0)  # every float parameter's range
    box: tuple[tuple[float, float], ...] | None = None  # per-parameter ranges (overrides bounds)
    noise: float = 0.0  # standard deviation of the observation noise

    def ranges(self) -> tuple[tuple[float, float], ...]:
        return self.box if self.box is not None else (self.bounds,) * self.dim

    def value(self, trial: Any) -> float:
        """The noiseless value of ``trial``'s configuration (drawn through ``trial.suggest_*``)."""
        if self.name == "mixed5":
            x = np.array([trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(3)])
            n = trial.suggest_int("n", -5, 5)
            c = trial.suggest_categorical("c", list(_MIXED))
            shift, offset = _MIXED[c]
            return styblinski_tang(x - shift) + styblinski_tang(np.array([float(n)])) + offset
        x = np.array(
            [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(self.ranges())]
        )
        return float(self.func(x))


SUITE: dict[str, SuiteFunction] = {
    f.name: f
    for f in (
        SuiteFunction(
            "branin", 2, 0.39788735772973816,
            "VLSE; smooth, three global minima: the classic BO sanity check (old cell)",
            func=lambda x: _branin(x[0], x[1]), box=((-5.0, 10.0), (0.0, 15.0)),
        ),
        SuiteFunction(
            "camel", 2, -1.0316284534898774,
            "VLSE six-hump camel; two global and four local minima, a steep rim",
            func=camel, box=((-3.0, 3.0), (-2.0, 2.0)),
        ),
        SuiteFunction(
            "hartmann3", 3, -3.8627797869493365,
            "VLSE; four local minima, an optimum near the box's edge",
            func=hartmann3,
        ),
        SuiteFunction(
            "rosenbrock4", 4, 0.0,
            "VLSE / BBOB f8; ill-conditioned curved valley, values spanning 6 decades (heavy tail)",
            func=rosenbrock, bounds=(-5.0, 10.0),
        ),
        SuiteFunction(
            "step5", 5, 0.0,
            "BBOB f7 step ellipsoid; plateaus (zero gradient almost everywhere), 1:100 scaling",
            func=step_ellipsoid, bounds=(-5.0, 5.0),
        ),
        SuiteFunction(
            "mixed5", 5, 3 * -39.16616570377142 - 39.0,
            "Styblinski-Tang on 3 floats + 1 integer in [-5, 5] + a 4-way categorical that "
            "shifts the optimum and offsets the value: a search space like a network's",
        ),
        SuiteFunction(
            "hartmann6", 6, -3.322368011415515,
            "VLSE; six local minima in the unit cube (old cell)",
            func=_hartmann6,
        ),
        SuiteFunction(
            "hartmann6-noisy", 6, -3.322368011415515,
            "Hartmann-6 observed with Gaussian noise (sd 0.1); regret on the noiseless value",
            func=_hartmann6, noise=0.1,
        ),
        SuiteFunction(
            "levy8", 8, 0.0,
            "VLSE; multimodal with a broad basin, 8 dimensions",
            func=levy, bounds=(-10.0, 10.0),
        ),
        SuiteFunction(
            "ackley10", 10, 0.0,
            "VLSE Ackley; a nearly flat outer region with a narrow central funnel, "
            "10 dimensions",
            func=ackley, bounds=(-32.768, 32.768),
        ),
    )
}


# contestants of the suite beyond the registry's names: the default sampler as it was before the
# suite (every later change off), and BoTorch's LogEI through Optuna's integration
BASELINE_KWARGS: dict[str, Any] = {
    "warp": False,
    "deterministic": True,
    "trust_region": False,
    "refit_every": 1,
}
SUITE_LABELS = {
    "trainwell": "trainwell bayes (default)",
    "trainwell-v0": "trainwell bayes, before",
    "gp": "optuna GPSampler",
    "tpe": "optuna TPE",
    "botorch": "botorch LogEI",
    "random": "random",
}
PEERS = ("gp", "tpe", "botorch")


def suite_sampler(name: str, seed: int) -> Any:
    """A contestant of the suite by name."""
    import json

    from trainwell.search.bayes import BayesSampler

    if name == "trainwell-v0":
        return BayesSampler(seed=seed, **BASELINE_KWARGS)
    if name.startswith("bayes:"):
        # a variant for the change-by-change log: bayes:warp=true+n_local_search=10
        kwargs = {}
        for item in name[len("bayes:") :].split("+"):
            key, _, value = item.partition("=")
            kwargs[key] = json.loads(value)
        return BayesSampler(seed=seed, **kwargs)
    if name == "botorch":
        try:
            from optuna_integration import BoTorchSampler
        except ImportError as exc:
            raise SystemExit(f"botorch needs optuna-integration and botorch: {exc}") from None
        return BoTorchSampler(seed=seed, n_startup_trials=4)
    return make_sampler(name, seed)


def suite_one(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """One run of the suite: (function, sampler, seed, trials, workers) -> its record: regret
    of the best trial so far after each trial, and the sampler's seconds per trial.

    ``workers`` > 1 simulates that many workers in one process: it starts ``workers`` trials
    (each drawn while the earlier ones are RUNNING with their parameters, as a study's workers
    see them), then tells their values. With noise, the best trial is the one with the best
    observed value (the one a user would pick) and its regret is its noiseless value's.
    """
    function, name, seed, n_trials, workers = job
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    f = SUITE[function]
    sampler = timed(suite_sampler(name, seed))
    study = optuna.create_study(sampler=sampler)
    noise = np.random.default_rng([seed, 7919])
    observed, true = [], []
    while len(observed) < n_trials:
        # each worker draws its configuration when it starts (Optuna stores a trial's
        # parameters when they are suggested): the next one sees it RUNNING, with them
        batch = []
        for _ in range(min(workers, n_trials - len(observed))):
            trial = study.ask()
            batch.append((trial, f.value(trial)))
        for trial, v in batch:
            y = v + f.noise * float(noise.standard_normal()) if f.noise else v
            study.tell(trial, y)
            observed.append(y)
            true.append(v)
    incumbent = [true[int(np.argmin(observed[: i + 1]))] for i in range(n_trials)]
    regret = np.maximum(np.array(incumbent) - f.optimum, 0.0)
    return {
        "function": function,
        "sampler": name,
        "seed": seed,
        "workers": workers,
        "trials": n_trials,
        # 7 significant digits of regret, microseconds of time: the cache stays small
        "regret": [float(f"{r:.7g}") for r in regret],
        "seconds": [round(float(sampler.times.get(i, 0.0)), 6) for i in range(n_trials)],
    }


def _key(rec: dict[str, Any]) -> tuple[str, str, int, int]:
    return (rec["function"], rec["sampler"], int(rec["seed"]), int(rec.get("workers", 1)))


def load_cache(path: Path) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    """The runs stored in ``path`` (JSON lines), the longest of each key."""
    import json

    out: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                k = _key(rec)
                if k not in out or rec["trials"] > out[k]["trials"]:
                    out[k] = rec
    return out


def run_suite(
    jobs: list[tuple[str, str, int, int, int]], cache: Path, n_proc: int, resume: bool
) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    """Run the jobs not in ``cache`` yet (with ``resume``; else all), appending each record to
    it as it finishes; all of the cache's records back."""
    import json

    have = load_cache(cache) if resume else {}
    todo = [
        j for j in jobs if (k := (j[0], j[1], j[2], j[4])) not in have or have[k]["trials"] < j[3]
    ]
    if not resume and cache.exists():
        cache.unlink()
    cache.parent.mkdir(parents=True, exist_ok=True)

    def store(rec: dict[str, Any]) -> None:
        with cache.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")

    if n_proc > 1:
        with ProcessPoolExecutor(n_proc) as pool:
            for rec in pool.map(suite_one, todo, chunksize=1):
                store(rec)
    else:
        for job in todo:
            store(suite_one(job))
    return load_cache(cache)


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return 1.0 if a <= 0 else float("inf")


def suite_table(
    runs: dict[tuple[str, str, int, int], dict[str, Any]],
    functions: list[str],
    samplers: list[str],
    budgets: list[int],
) -> str:
    """One table per budget: median and quartiles of the regret, median / best peer's median,
    seed-paired win rate against GPSampler, sampler seconds per trial; then the targets, for
    each contestant that is not a peer."""
    out = []
    for n in budgets:
        # per contestant: cells, cells with median <= 0.8x, with q75 <= the best peer's, the
        # worst ratio, and the seed-paired wins against GPSampler
        score: dict[str, list[Any]] = {}
        lines = [
            f"## regret after {n} trials",
            f"{'function':<16} {'sampler':<26} {'seeds':>5} {'median':>10} {'q25':>10} "
            f"{'q75':>10} {'/best peer':>10} {'win vs gp':>9} {'ms/trial':>9} {'ms@last10':>9}",
        ]
        for fn in functions:
            stats: dict[str, tuple[np.ndarray, float, float]] = {}
            by_seed: dict[str, dict[int, float]] = {}
            for s in samplers:
                recs = [
                    r for k, r in runs.items()
                    if k[0] == fn and k[1] == s and k[3] == 1 and r["trials"] >= n
                ]
                if not recs:
                    continue
                by_seed[s] = {r["seed"]: r["regret"][n - 1] for r in recs}
                vals = np.array(list(by_seed[s].values()))
                ms = 1e3 * float(np.mean([np.mean(r["seconds"][:n]) for r in recs]))
                # the time per trial over the budget's last 10 trials, where the GP is largest
                last = 1e3 * float(
                    np.mean([np.mean(r["seconds"][max(0, n - 10) : n]) for r in recs])
                )
                stats[s] = (vals, ms, last)
            peers = [p for p in PEERS if p in stats]
            best_med = min((float(np.median(stats[p][0])) for p in peers), default=float("nan"))
            best_q75 = min((float(np.percentile(stats[p][0], 75)) for p in peers), default=0.0)
            for s, (vals, ms, last) in stats.items():
                q25, med, q75 = np.percentile(vals, [25, 50, 75])
                ratio = _ratio(float(med), best_med) if peers else float("nan")
                win = ""
                if s != "gp" and "gp" in by_seed:
                    common = sorted(set(by_seed[s]) & set(by_seed["gp"]))
                    a = np.array([by_seed[s][c] for c in common])
                    b = np.array([by_seed["gp"][c] for c in common])
                    w = (a < b) + 0.5 * (a == b)
                    win = f"{w.mean():.2f}"
                    if s not in PEERS:
                        score.setdefault(s, [0, 0, 0, 0.0, []])[4].extend(w)
                if s not in PEERS and peers:
                    sc = score.setdefault(s, [0, 0, 0, 0.0, []])
                    sc[0] += 1
                    sc[1] += ratio <= 0.8
                    sc[2] += q75 <= best_q75
                    sc[3] = max(sc[3], ratio)
                lines.append(
                    f"{fn:<16} {SUITE_LABELS.get(s, s):<26} {len(vals):>5} {med:>10.3g} "
                    f"{q25:>10.3g} {q75:>10.3g} {ratio:>10.2f} {win:>9} {ms:>9.1f} {last:>9.1f}"
                )
        for s, (cells, med_ok, q75_ok, worst, wins) in score.items():
            if not cells:
                continue
            lines.append(
                f"targets, {SUITE_LABELS.get(s, s)}: median <= 0.8x best peer in "
                f"{med_ok}/{cells} cells (target >= 80%), worst ratio {worst:.2f} (target "
                f"<= 1.2), q75 <= best peer's in {q75_ok}/{cells} (target >= 80%), seed-paired "
                f"win rate vs gp {np.mean(wins) if wins else float('nan'):.2f} (target >= 0.6)"
            )
        out.append("\n".join(lines))
    return "\n\n".join(out)


def workers_table(
    runs: dict[tuple[str, str, int, int], dict[str, Any]],
    functions: list[str],
    sampler: str,
    workers: list[int],
    budgets: list[int],
) -> str:
    """Median regret with K simulated workers against 1 worker at equal trials, over the seeds
    that every K ran."""
    lines = [
        f"## {SUITE_LABELS.get(sampler, sampler)}: K workers against 1 at equal trials "
        f"(median regret over seeds; ratio to 1 worker)",
        f"{'function':<16} {'trials':>6} " + " ".join(f"{f'K={k}':>18}" for k in workers),
    ]
    ratios: dict[int, list[float]] = {k: [] for k in workers}
    for fn in functions:
        for n in budgets:
            by_k = {
                k: {
                    key[2]: r["regret"][n - 1] for key, r in runs.items()
                    if key[0] == fn and key[1] == sampler and key[3] == k and r["trials"] >= n
                }
                for k in workers
            }
            # the seeds every K ran: medians of the same seeds
            common = set.intersection(*(set(v) for v in by_k.values()))
            meds = {
                k: float(np.median([v[s] for s in common])) if common else float("nan")
                for k, v in by_k.items()
            }
            if not common:
                continue  # no seed that every K ran: nothing to compare
            cols = []
            for k in workers:
                r = _ratio(meds[k], meds[workers[0]])
                ratios[k].append(r)
                cols.append(f"{meds[k]:>9.3g} ({r:5.2f})")
            lines.append(f"{fn:<16} {n:>6} " + " ".join(f"{c:>18}" for c in cols))
    lines.append(
        "median of the ratios: "
        + ", ".join(f"K={k}: {np.median(v):.2f}" for k, v in ratios.items())
        + " (target for K=2: <= 1.2); cells at or below 1.2x: "
        + ", ".join(f"K={k}: {sum(r <= 1.2 for r in v)}/{len(v)}" for k, v in ratios.items())
    )
    return "\n".join(lines)


def suite_main(args: argparse.Namespace) -> int:
    """``--suite``: run (or, with ``--table-only``, only read) the suite and print its tables."""
    functions = args.functions.split(",")
    names = args.suite_samplers.split(",")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    workers = sorted(int(k) for k in args.workers.split(","))
    unknown = [f for f in functions if f not in SUITE]
    if unknown:
        raise SystemExit(f"unknown function {unknown[0]!r}; valid: {', '.join(SUITE)}")
    cache = Path(args.cache)
    t0 = time.time()
    if args.table_only:
        runs = load_cache(cache)
    else:
        jobs = [
            (fn, name, seed, budgets[-1], k)
            for k in workers
            for seed in range(args.first_seed, args.first_seed + args.seeds)
            for fn in functions
            for name in names
        ]
        runs = run_suite(jobs, cache, args.jobs, args.resume)
        print(f"# {len(jobs)} runs ({time.time() - t0:.0f} s); cache {cache}")
    if 1 in workers or args.table_only:
        print(suite_table(runs, functions, names, budgets))
    if len(workers) > 1:
        for name in names:
            print()
            print(workers_table(runs, functions, name, workers, budgets))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeds per synthetic cell")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="--suite: the first seed (to split a suite between processes or machines; the "
        "caches are JSON lines, so concatenating them merges the runs)",
    )
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--problems", default="branin,hartmann6,digits")
    ap.add_argument("--real-seeds", type=int, default=10, help="seeds of the digits objective")
    ap.add_argument("--real-trials", type=int, default=50)
    ap.add_argument("--real-samplers", default="trainwell,gp,tpe,random")
    ap.add_argument("--epochs", type=int, default=15, help="epochs of each digits trial")
    ap.add_argument("--jobs", type=int, default=1, help="processes (one thread each)")
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="only the 2-worker section: duplicates in fresh and resumed studies, regret",
    )
    ap.add_argument("--parallel-seeds", type=int, default=20, help="studies of each kind")
    ap.add_argument("--parallel-trials", type=int, default=12, help="trials of each study")
    ap.add_argument("--regret-trials", type=int, default=20, help="trials of the regret runs")
    ap.add_argument(
        "--interrupts", type=int, default=0, metavar="N",
        help="only N tries of Ctrl-C on `trainwell tune --workers 2`, then --resume",
    )
    ap.add_argument(
        "--suite", action="store_true",
        help="the broad suite: --functions x --suite-samplers x --seeds, one run each of the "
        "largest of --budgets trials",
    )
    ap.add_argument("--functions", default=",".join(SUITE), help="the suite's functions")
    ap.add_argument("--suite-samplers", default="trainwell,gp,tpe")
    ap.add_argument("--budgets", default="20,50,100", help="trials at which regret is read")
    ap.add_argument(
        "--workers", default="1", help="simulated workers, e.g. 1,2,4 (ask K, then tell K)"
    )
    ap.add_argument("--cache", default="benchmarks/results/tuning-suite.jsonl")
    ap.add_argument("--resume", action="store_true", help="keep the cache's runs, run the rest")
    ap.add_argument(
        "--table-only", action="store_true", help="print the cache's tables, run nothing"
    )
    args = ap.parse_args(argv)
    if args.suite:
        return suite_main(args)
    if args.interrupts:
        print(interrupts(args.interrupts))
        return 0
    if args.parallel:
        print(parallel(args.parallel_seeds, args.parallel_trials, args.regret_trials))
        return 0
    problems = args.problems.split(",")
    jobs = []
    budgets: dict[str, list[int]] = {}
    for problem in problems:
        if problem == "digits":
            names, seeds, n = args.real_samplers.split(","), args.real_seeds, args.real_trials
        else:
            names, seeds, n = args.samplers.split(","), args.seeds, args.trials
        budgets[problem] = sorted({min(20, n), n})
        jobs += [(problem, name, seed, n, args.epochs) for name in names for seed in range(seeds)]
    t0 = time.time()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_one, jobs, chunksize=1))
    else:
        results = [run_one(j) for j in jobs]
    print(
        f"# {len(jobs)} runs in {time.time() - t0:.0f} s; simple regret (synthetic), "
        f"best validation log-loss (digits, {args.epochs} epochs a trial)"
    )
    print(summarize(results, budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())

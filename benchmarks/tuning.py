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

The samplers do not know the budget, so the result at 20 trials is read from the first 20
trials of each 50-trial run. "time/trial" is the time spent inside the sampler (search-space
inference and sampling), measured by a wrapper, averaged over the run; "t@41-50" is the same
over trials 41-50, where the GP is largest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
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


def problems() -> dict[str, Any]:
    """The synthetic problems by name, from the tests' module (imported from its folder)."""
    if str(SYNTHETIC.parent) not in sys.path:
        sys.path.insert(0, str(SYNTHETIC.parent))
    import synthetic

    return dict(synthetic.PROBLEMS)


def timed(sampler: Any) -> Any:
    """The sampler with its own time per trial recorded (``sampler.times[trial.number]``)."""
    import optuna

    class Timed(optuna.samplers.BaseSampler):
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.times: dict[int, float] = {}

        def _add(self, number: int, t0: float) -> None:
            self.times[number] = self.times.get(number, 0.0) + time.perf_counter() - t0

        def infer_relative_search_space(self, study, trial):  # noqa: ANN001, ANN201
            t0 = time.perf_counter()
            out = self.inner.infer_relative_search_space(study, trial)
            self._add(trial.number, t0)
            return out

        def sample_relative(self, study, trial, space):  # noqa: ANN001, ANN201
            t0 = time.perf_counter()
            out = self.inner.sample_relative(study, trial, space)
            self._add(trial.number, t0)
            return out

        def sample_independent(self, study, trial, name, dist):  # noqa: ANN001, ANN201
            t0 = time.perf_counter()
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeds per synthetic cell")
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
    args = ap.parse_args(argv)
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

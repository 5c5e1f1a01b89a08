"""``benchmarks/tuning.py --suite``: its functions have the optima it says, its runs are cached
and resumed, its tables compute what they print; and the default sampler keeps the old
benchmark's four cells at or below their medians."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "tuning.py"
SYNTHETIC = Path(__file__).resolve().parents[1] / "tune"  # tests/tune/synthetic.py
if str(SYNTHETIC) not in sys.path:
    sys.path.insert(0, str(SYNTHETIC))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("tuning_benchmark", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


class _Fixed:
    """A trial that answers every suggest_* from a dict."""

    def __init__(self, params):
        self.params = params

    def suggest_float(self, name, low, high, **_):
        assert low <= self.params[name] <= high
        return self.params[name]

    def suggest_int(self, name, low, high, **_):
        assert low <= self.params[name] <= high
        return self.params[name]

    def suggest_categorical(self, name, choices):
        assert self.params[name] in choices
        return self.params[name]


#: the literature's minimizers of the suite's functions
MINIMIZERS = {
    "branin": [np.pi, 2.275],
    "camel": [0.0898420131, -0.7126564032],
    "hartmann3": [0.114614, 0.555649, 0.852547],
    "rosenbrock4": [1.0] * 4,
    "step5": [1.7, -2.3, 0.6, 3.1, -1.2],
    "hartmann6": [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
    "hartmann6-noisy": [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
    "levy8": [1.0] * 8,
    "ackley10": [0.0] * 10,
}


def test_each_function_reaches_its_optimum_at_the_literatures_minimizer(bench):
    assert len(bench.SUITE) >= 8
    dims = {f.dim for f in bench.SUITE.values()}
    assert min(dims) == 2 and max(dims) == 10
    for name, x in MINIMIZERS.items():
        f = bench.SUITE[name]
        value = f.value(_Fixed({f"x{i}": v for i, v in enumerate(x)}))
        assert value == pytest.approx(f.optimum, abs=1e-4), name
    # the mixed one: 3 floats at Styblinski-Tang's -2.903534 shifted by category "b" (+1), the
    # integer at -3 (its best integer); any other category or integer is worse
    mixed = bench.SUITE["mixed5"]
    best = {"x0": -1.903534, "x1": -1.903534, "x2": -1.903534, "n": -3, "c": "b"}
    assert mixed.value(_Fixed(best)) == pytest.approx(mixed.optimum, abs=1e-6)
    for change in ({"n": -2}, {"c": "a"}, {"c": "c"}, {"x0": 0.0}):
        assert mixed.value(_Fixed({**best, **change})) > mixed.optimum + 0.5
    # random points are above every optimum (the optima are minima)
    rng = np.random.default_rng(0)
    for f in bench.SUITE.values():
        if f.name == "mixed5":
            continue
        for _ in range(20):
            x = {f"x{i}": float(rng.uniform(lo, hi)) for i, (lo, hi) in enumerate(f.ranges())}
            assert f.value(_Fixed(x)) >= f.optimum - 1e-9
    # the step ellipsoid is flat between steps
    step = bench.SUITE["step5"]
    x = {f"x{i}": v for i, v in enumerate([0.0, 0.0, 0.0, 0.0, 0.0])}
    y = {**x, "x0": 0.001}
    assert step.value(_Fixed(x)) == step.value(_Fixed(y)) > 0


def test_runs_are_cached_resumed_and_tabulated(bench, tmp_path, capsys):
    cache = tmp_path / "suite.jsonl"
    args = ["--suite", "--functions", "branin,hartmann6-noisy", "--suite-samplers",
            "random,tpe", "--seeds", "2", "--budgets", "3,6", "--cache", str(cache)]
    assert bench.main(args) == 0
    first = capsys.readouterr().out
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(records) == 2 * 2 * 2
    for rec in records:
        regret = np.array(rec["regret"])
        assert len(regret) == 6 == len(rec["seconds"])
        if rec["function"] == "branin":
            # no noise: the regret is the best value so far, so it never rises
            assert (np.diff(regret) <= 0).all() and (regret >= 0).all()
    # the same seed gives the same run (the table is reproducible from the command)
    again = bench.suite_one(("branin", "tpe", 1, 6, 1))
    stored = next(r for r in records if bench._key(r) == ("branin", "tpe", 1, 1))
    assert again["regret"] == stored["regret"]
    # --resume runs only what the cache lacks; --table-only prints the same table
    assert bench.main([*args, "--resume", "--seeds", "3"]) == 0
    assert len(cache.read_text().splitlines()) == len(records) + 2 * 2
    capsys.readouterr()
    assert bench.main([*args, "--table-only"]) == 0
    table = capsys.readouterr().out
    assert "## regret after 3 trials" in table and "## regret after 6 trials" in table
    assert "optuna TPE" in table and "random" in table
    # the table's median is the median of the stored runs at that budget
    runs = bench.load_cache(cache)
    vals = [r["regret"][2] for k, r in runs.items() if k[:2] == ("branin", "tpe")]
    section = table.split("## regret after 6 trials")[0]
    row = next(line for line in section.splitlines()
               if line.startswith("branin") and "optuna TPE" in line)
    assert float(row.split()[4]) == pytest.approx(float(np.median(vals)), rel=1e-2)
    assert "## regret after" in first
    # --first-seed runs another range of seeds into another cache; concatenated, they merge
    other = tmp_path / "other.jsonl"
    more = ["--first-seed", "3", "--seeds", "2", "--cache", str(other)]
    assert bench.main([*args[:-2], *more]) == 0
    assert sorted({json.loads(line)["seed"] for line in other.read_text().splitlines()}) == [3, 4]
    merged = tmp_path / "merged.jsonl"
    merged.write_text(cache.read_text() + other.read_text())
    assert sorted({k[2] for k in bench.load_cache(merged)}) == [0, 1, 2, 3, 4]


def test_ratio_and_win_rate_in_the_table(bench):
    runs = {}
    for seed, (ours, gp, tpe) in enumerate([(1.0, 2.0, 3.0), (1.0, 0.5, 3.0), (0.0, 0.0, 3.0)]):
        for name, v in (("trainwell", ours), ("gp", gp), ("tpe", tpe)):
            runs[("f", name, seed, 1)] = {"function": "f", "sampler": name, "seed": seed,
                                          "workers": 1, "trials": 1, "regret": [v],
                                          "seconds": [0.001]}
    table = bench.suite_table(runs, ["f"], ["trainwell", "gp", "tpe"], [1])
    ours = next(line for line in table.splitlines() if "trainwell" in line)
    # median 1.0 against the best peer's median (gp: 0.5); wins 1, loses 1, ties 1 -> 0.5
    assert ours.split()[-4:] == ["2.00", "0.50", "1.0", "1.0"]
    assert "worst ratio 2.00" in table and "win rate vs gp 0.50" in table


#: the old benchmark's four cells (Branin and Hartmann-6 after 20 and 50 trials): the median
#: regret, over seeds 0-4, of the default sampler as it was before the suite (warp, trust region
#: and noise level off; ``benchmarks/tuning.py``'s ``trainwell-v0``)
OLD_CELLS = {
    "branin": {20: 0.04237303917485846, 50: 1.3348392977619028e-05},
    "hartmann6": {20: 0.7403368430049122, 50: 0.0019821295004409656},
}


@pytest.mark.slow
@pytest.mark.parametrize("problem", sorted(OLD_CELLS))
def test_default_sampler_keeps_the_old_cells_at_or_below_their_medians(problem):
    from synthetic import PROBLEMS

    from trainwell.search.config import TuneConfig
    from trainwell.search.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    p = PROBLEMS[problem]
    regret: dict[int, list[float]] = {20: [], 50: []}
    for seed in range(5):
        study = optuna.create_study(sampler=make_sampler(TuneConfig(), seed))
        study.optimize(p.objective, n_trials=50)
        values = [t.value for t in study.trials]
        for n in regret:
            regret[n].append(min(values[:n]) - p.optimum)
    for n, cell in OLD_CELLS[problem].items():
        assert float(np.median(regret[n])) <= cell * (1 + 1e-9), (problem, n)


def test_workers_table_compares_k_workers_with_one_at_equal_trials(bench):
    runs = {}
    for seed, (one, two) in enumerate([(1.0, 3.0), (2.0, 1.0), (4.0, 5.0)]):
        for k, v in ((1, one), (2, two)):
            runs[("f", "trainwell", seed, k)] = {
                "function": "f", "sampler": "trainwell", "seed": seed, "workers": k,
                "trials": 2, "regret": [9.0, v], "seconds": [0.0, 0.0],
            }
    table = bench.workers_table(runs, ["f"], "trainwell", [1, 2], [1, 2])
    rows = [line.split() for line in table.splitlines() if line.startswith("f ")]
    # after 2 trials: medians 2.0 and 3.0 -> 1.5x; after 1 trial: 9.0 both -> 1.0x
    assert rows[1][1:] == ["2", "2", "(", "1.00)", "3", "(", "1.50)"]
    assert rows[0][-1] == "1.00)"
    assert "K=2: 1.25" in table and "K=2: 1/2" in table
    # a seed that only one K ran is left out of both medians
    runs[("f", "trainwell", 9, 1)] = {
        "function": "f", "sampler": "trainwell", "seed": 9, "workers": 1,
        "trials": 2, "regret": [9.0, 100.0], "seconds": [0.0, 0.0],
    }
    assert bench.workers_table(runs, ["f"], "trainwell", [1, 2], [1, 2]) == table

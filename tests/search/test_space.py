"""Search spaces: every kind, conditional parameters, path validation, grids, the refined space."""

from __future__ import annotations

import math

import optuna
import pytest

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.search.space import (
    apply_params,
    finite_points,
    grid,
    narrow,
    parse_param,
    parse_space,
    suggest,
    validate_space,
)

SPACE = {
    "train.optimizer.lr": "loguniform(1e-4, 1e-1)",
    "model.dropout": "uniform(0, 0.5)",
    "model.hidden.depth": "int(1, 3)",
    "model.hidden.width": "logint(8, 256)",
    "model.activation": ["relu", "tanh"],
    "train.optimizer.name": "choice('adam', 'sgd')",
    "train.optimizer.momentum": {
        "dist": "uniform(0.5, 0.99)",
        "when": {"train.optimizer.name": "sgd"},
    },
}


def _sample(space, n=60, seed=0):
    cfg = load_config({"tune": {"space": space}})
    params = validate_space(cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        values = suggest(trial, params, cfg.to_dict())
        study.tell(trial, 0.0)
        out.append(values)
    return cfg, out


def test_each_kind_samples_within_its_range_and_scale():
    _, samples = _sample(SPACE, n=200)
    lrs = [s["train.optimizer.lr"] for s in samples]
    assert all(1e-4 <= v <= 1e-1 for v in lrs)
    # log-uniform: log10(lr) is uniform on [-4, -1], so about a third falls below 1e-3
    assert 0.2 < sum(v < 1e-3 for v in lrs) / len(lrs) < 0.47
    assert all(0 <= s["model.dropout"] <= 0.5 for s in samples)
    assert {s["model.hidden.depth"] for s in samples} == {1, 2, 3}
    widths = [s["model.hidden.width"] for s in samples]
    assert all(isinstance(w, int) and 8 <= w <= 256 for w in widths)
    assert 0.3 < sum(w < 45 for w in widths) / len(widths) < 0.7  # log scale: median ~ sqrt(8*256)
    assert {s["model.activation"] for s in samples} == {"relu", "tanh"}


def test_conditional_parameter_only_when_its_condition_holds():
    _, samples = _sample(SPACE, n=80)
    for s in samples:
        assert ("train.optimizer.momentum" in s) == (s["train.optimizer.name"] == "sgd")
    assert any("train.optimizer.momentum" in s for s in samples)


def test_sampled_values_land_in_the_config():
    cfg = load_config({"model": {"hidden": [64, 64]}})
    raw = apply_params(
        cfg.to_dict(),
        {
            "model.hidden.depth": 3,
            "model.hidden.width": 32,
            "train.optimizer.lr": 0.05,
            "model.activation": "tanh",
        },
    )
    new = load_config(raw)
    assert new.model.hidden == [32, 32, 32]
    assert new.train.optimizer.lr == 0.05
    assert (
        new.model.activation in ("tanh", {"name": "tanh"})
        or getattr(new.model.activation, "name", None) == "tanh"
    )
    only_width = load_config(apply_params(cfg.to_dict(), {"model.hidden.width": 16}))
    assert only_width.model.hidden == [16, 16]


def test_list_valued_choices_round_trip():
    cfg, samples = _sample({"model.hidden": "choice([32], [64, 64])"}, n=20)
    assert {tuple(s["model.hidden"]) for s in samples} == {(32,), (64, 64)}


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            {"model.dropuot": "uniform(0, 0.5)"},
            r"'model.dropuot' is not a config field:.*did you mean 'model.dropout'",
        ),
        ({"modle.dropout": "uniform(0, 0.5)"}, r"'modle.dropout' is not a config field"),
        ({"model.dropout.x": "uniform(0, 0.5)"}, r"model.dropout is a single value"),
        (
            {"model.dropout": "uniform(0, 1.5)"},
            r"'model.dropout': value 1.5 gives an invalid config",
        ),
        ({"tune.trials": "int(1, 5)"}, r"cannot be searched"),
    ],
)
def test_bad_paths_are_refused_with_the_path(space, match):
    # refused when the config loads (so `trainwell check` catches it) ...
    with pytest.raises(ConfigError, match=match):
        load_config({"tune": {"space": space}})
    # ... and by validate_space itself, for a Config whose space was set afterwards
    cfg = load_config({})
    cfg.tune.space = space
    with pytest.raises(ConfigError, match=match):
        validate_space(cfg)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("uniform(0.5, 0.5)", r"empty range: uniform\(0.5, 0.5\) needs low < high"),
        ("int(3, 2)", r"empty range"),
        ("loguniform(0, 1)", r"needs low > 0"),
        ("choice()", r"at least one value"),
        ([], r"at least one value"),
        ("unifrom(0, 1)", r"unknown distribution 'unifrom'; did you mean 'uniform'"),
        ("int(1.5, 3)", r"bounds must be integers"),
        ("uniform(0)", r"needs two numbers"),
        (42, r"expected a string"),
    ],
)
def test_malformed_specs_are_refused_at_load(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_param("model.dropout", spec)
    with pytest.raises(ConfigError, match="tune.space"):
        load_config({"tune": {"space": {"model.dropout": spec}}})


def test_boundary_ranges_are_accepted():
    p = parse_param("model.dropout", "uniform(0, 1e-9)")
    assert (p.low, p.high) == (0, 1e-9)
    assert parse_param("x", "int(1, 2)").grid(5) == [1, 2]
    assert parse_param("x", "choice(relu, tanh)").choices == ("relu", "tanh")


def test_grid_is_finer_over_important_parameters():
    params = parse_space(
        {
            "train.optimizer.lr": {"dist": "loguniform(1e-4, 1e-1)", "important": True},
            "model.dropout": "uniform(0, 0.5)",
        }
    )
    points = grid(params, points=3, points_important=5)
    assert len(points) == 15
    lrs = sorted({p["train.optimizer.lr"] for p in points})
    assert lrs == pytest.approx([1e-4, 10**-3.25, 10**-2.5, 10**-1.75, 1e-1])  # log-spaced
    assert sorted({p["model.dropout"] for p in points}) == pytest.approx([0, 0.25, 0.5])
    # the same effect by naming it in tune.important
    plain = parse_space(
        {"train.optimizer.lr": "loguniform(1e-4, 1e-1)", "model.dropout": "uniform(0, 0.5)"}
    )
    assert len(grid(plain, 3, 5, important=["model.dropout"])) == 15


def test_grid_expands_conditional_parameters_only_where_active():
    params = parse_space(
        {
            "train.optimizer.name": ["adam", "sgd"],
            "train.optimizer.momentum": {
                "dist": "uniform(0.5, 0.9)",
                "when": {"train.optimizer.name": "sgd"},
            },
        }
    )
    points = grid(params, points=3)
    assert len(points) == 1 + 3
    assert sum("train.optimizer.momentum" in p for p in points) == 3


def test_narrow_shrinks_ranges_around_the_best_values():
    params = parse_space(
        {
            "train.optimizer.lr": "loguniform(1e-5, 1e-1)",
            "model.dropout": "uniform(0, 0.5)",
            "model.hidden.width": "int(8, 512)",
            "model.activation": ["relu", "tanh", "elu"],
        }
    )
    best = [
        {
            "train.optimizer.lr": 1e-3,
            "model.dropout": 0.2,
            "model.hidden.width": 64,
            "model.activation": "tanh",
        },
        {
            "train.optimizer.lr": 1e-2,
            "model.dropout": 0.3,
            "model.hidden.width": 100,
            "model.activation": "relu",
        },
    ]
    lr, drop, width, act = narrow(params, best, margin=0.25)
    # log range [-3, -2] widened by a quarter of its width on each side
    assert math.log10(lr.low) == pytest.approx(-3.25) and math.log10(lr.high) == pytest.approx(
        -1.75
    )
    assert (drop.low, drop.high) == pytest.approx((0.175, 0.325))
    assert width.low <= 64 and width.high >= 100 and width.high - width.low < 100
    assert set(act.choices) == {"relu", "tanh"}
    # never outside the original bounds
    edge = narrow(params, [{"model.dropout": 0.0}], margin=1.0)[1]
    assert edge.low == 0.0 and edge.high > 0.0


def test_when_cycles_are_refused():
    with pytest.raises(ConfigError, match="cycle"):
        parse_space(
            {
                "model.dropout": {"dist": "uniform(0, 0.5)", "when": {"model.norm": "batch"}},
                "model.norm": {"choices": ["batch", "none"], "when": {"model.dropout": 0.1}},
            }
        )


def test_architecture_fields_are_searchable_and_reach_the_built_model():
    """depth, width, activation, init, norm and dropout: sampled values build that network."""
    import json
    import warnings

    import torch
    from optuna.trial import FixedTrial

    from trainwell.nn import build_model

    space = {
        "model.hidden.depth": "int(1, 3)",
        "model.hidden.width": "logint(4, 64)",
        "model.activation": ["relu", "tanh"],
        "model.init": "choice('xavier', {name = 'constant', value = 0.25})",
        "model.norm": ["none", "batch", "layer"],
        "model.dropout": "uniform(0, 0.5)",
    }
    cfg = load_config({"tune": {"space": space}})
    params = validate_space(cfg)
    assert [p.path for p in params] == list(space)
    constant = "json:" + json.dumps({"name": "constant", "value": 0.25}, sort_keys=True)
    trial = FixedTrial(
        {
            "model.hidden.depth": 3,
            "model.hidden.width": 7,
            "model.activation": "tanh",
            "model.init": constant,
            "model.norm": "batch",
            "model.dropout": 0.3,
        }
    )
    values = suggest(trial, params, cfg.to_dict())
    assert values["model.init"] == {"name": "constant", "value": 0.25}  # a table, decoded
    new = load_config(apply_params(cfg.to_dict(), values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a constant init's symmetry warning
        model = build_model(new.model, (4,), 3, "multiclass")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [7, 7, 7, 3]  # depth 3, width 7, head
    assert all(torch.all(lin.weight == 0.25) for lin in linears[:-1])  # the searched init
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 3
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.3] * 3
    # a value outside what the model section accepts is refused with its path
    with pytest.raises(ConfigError, match=r"'model.norm': value 'group'"):
        load_config({"tune": {"space": {"model.norm": ["batch", "group"]}}})


def test_finite_points_are_every_configuration_of_a_discrete_space():
    space = {
        "model.activation": {"choices": ["relu", "tanh"], "points": 1},  # points: grids only
        "model.hidden.depth": "int(1, 3)",
        "train.optimizer.name": ["adam", "sgd"],
        "train.optimizer.momentum": {
            "choices": [0.9, 0.99],
            "when": {"train.optimizer.name": "sgd"},
        },
    }
    points = finite_points(parse_space(space))
    # adam: 2 x 3; sgd: 2 x 3 x 2 momenta
    assert points is not None and len(points) == 6 + 12
    assert len({tuple(sorted(p.items())) for p in points}) == 18
    momentum = "train.optimizer.momentum"
    assert all((momentum in p) == (p["train.optimizer.name"] == "sgd") for p in points)
    assert finite_points(parse_space({"model.dropout": "uniform(0, 0.5)"})) is None
    assert finite_points(parse_space({"model.hidden.width": "int(1, 1000)"}), limit=999) is None


def test_each_parameters_distribution_is_the_one_it_suggests_from():
    study = optuna.create_study()
    trial = study.ask()
    params = parse_space({k: v for k, v in SPACE.items() if k != "train.optimizer.momentum"})
    suggest(trial, params, {})
    assert {p.path: p.distribution() for p in params} == study.trials[0].distributions

"""The built-in sets for several heads: the rotated moons (a domain-shift pair) and the multitask
table, generated, seeded and loadable as ``builtin:`` sources."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_moons

from trainwell.cli import main
from trainwell.data import prepare
from trainwell.data.builtin import BUILTINS, load_builtin, multitask_table, rotated_moons
from trainwell.data.config import DataConfig
from trainwell.errors import DataError

CENTRE = np.array([0.5, 0.25])


def rotate(X, degrees):
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (X - CENTRE) @ rot.T + CENTRE


def test_the_target_is_an_independent_draw_of_the_moons_rotated_about_their_centre():
    Xs, ys = rotated_moons(200, 0.1, 35.0, "source", 7)
    Xt, yt = rotated_moons(200, 0.1, 35.0, "target", 7)
    X0, y0 = rotated_moons(200, 0.1, 0.0, "target", 7)
    np.testing.assert_allclose(Xt, rotate(X0, 35.0), atol=1e-12)  # the same draw, rotated
    np.testing.assert_array_equal(yt, y0)
    assert not np.allclose(Xs, X0)  # the source is another draw ...
    assert sorted(np.bincount(ys)) == sorted(np.bincount(yt)) == [100, 100]
    # ... of the same two moons: centred on the same point, labels as make_moons gives them
    np.testing.assert_allclose(Xs.mean(0), X0.mean(0), atol=0.05)
    Xm, ym = make_moons(200, noise=0.1, random_state=0)
    for X, y in ((Xs, ys), (Xm, ym)):
        assert X[y == 0, 1].mean() > X[y == 1, 1].mean()  # moon 0 on top, moon 1 below
    # the same seed gives the same pair; another seed another one
    np.testing.assert_array_equal(rotated_moons(200, 0.1, 35.0, "source", 7)[0], Xs)
    assert not np.allclose(rotated_moons(200, 0.1, 35.0, "source", 8)[0], Xs)


def test_the_rotation_makes_the_source_boundary_wrong_on_the_target():
    """A classifier of the source's moons loses accuracy on the target as the angle grows."""
    from sklearn.neighbors import KNeighborsClassifier

    Xs, ys = rotated_moons(300, 0.1, 0.0, "source", 0)
    knn = KNeighborsClassifier(5).fit(Xs, ys)
    accs = [knn.score(*rotated_moons(1000, 0.1, a, "target", 0)) for a in (0, 30, 50, 90)]
    assert accs[0] > 0.97 and accs[0] - 0.03 > accs[1] > accs[2] + 0.2 > accs[3] + 0.4


def test_the_multitask_table_has_two_related_targets_and_masks_drawn_last():
    X, Y = multitask_table(1200, random_state=0)
    assert X.shape == (1200, 10) and Y.shape == (1200, 2)
    label, value = Y[:, 0], Y[:, 1]
    assert sorted(np.unique(label)) == [0.0, 1.0, 2.0]
    assert np.bincount(label.astype(int)).min() >= 390  # balanced classes
    assert not np.isnan(value).any()
    means = [value[label == k].mean() for k in range(3)]  # related: value rises with the class
    assert means[0] < means[1] < means[2]
    Xm, Ym = multitask_table(1200, labelled_label=0.1, labelled_value=0.5, random_state=0)
    np.testing.assert_array_equal(Xm, X)
    has_label, has_value = Ym[:, 0] >= 0, ~np.isnan(Ym[:, 1])
    assert 0.07 < has_label.mean() < 0.13 and 0.45 < has_value.mean() < 0.55
    np.testing.assert_array_equal(Ym[has_label, 0], label[has_label])
    np.testing.assert_array_equal(Ym[has_value, 1], value[has_value])
    assert set(np.unique(Ym[~has_label, 0])) == {-1.0}


def test_both_are_registered_generators_seeded_by_the_run():
    assert {"rotated_moons", "multitask"} <= set(BUILTINS.names())
    assert BUILTINS.canonical("twinning_moons") == "rotated_moons"
    moons = load_builtin("rotated_moons", {"angle": 40, "domain": "target"}, seed=3)
    np.testing.assert_array_equal(moons.X, rotated_moons(300, 0.1, 40, "target", 3)[0])
    assert moons.task == "binary" and moons.target_names is None
    assert moons.feature_names == ["x0", "x1"]
    table = load_builtin("multitask", {"n_samples": 50}, seed=1)
    assert table.X.shape == (50, 10) and table.y.shape == (50, 2)
    assert table.target_names == ["label", "value"]
    np.testing.assert_array_equal(table.y, multitask_table(50, random_state=1)[1])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "rotated_moons",
            {"domain": "middle"},
            r"builtin:rotated_moons refused data.params .*domain must be 'source' or 'target'; "
            r"got 'middle'",
        ),
        (
            "rotated_moons",
            {"angel": 30},
            r"data.params.angel is not a parameter of builtin:rotated_moons; did you mean 'angle'",
        ),
        (
            "multitask",
            {"labelled_label": 1.5},
            r"labelled_label must be a fraction in \[0, 1\]; got 1.5",
        ),
        ("multitask", {"n_classes": 1}, r"n_classes >= 2"),
    ],
)
def test_bad_params_are_named(name, params, message):
    with pytest.raises(DataError, match=message):
        load_builtin(name, params, seed=0)


def test_the_rotated_moons_load_as_a_source_and_describe(tmp_path, monkeypatch, capsys):
    data = prepare(
        DataConfig(source="builtin:rotated_moons", params={"domain": "target", "angle": 30}), seed=0
    )
    assert (data.task, data.input_shape, data.n_outputs) == ("binary", (2,), 1)
    assert len(data.train) + len(data.val) + len(data.test) == 300
    (tmp_path / "shift.toml").write_text(
        '[data]\nsource = "builtin:rotated_moons"\nparams = { angle = 35, domain = "target" }\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "shift.toml"]) == 0
    out = capsys.readouterr().out
    assert "task: binary" in out and "model input: shape (2,)" in out

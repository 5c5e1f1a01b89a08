"""Averaging, calibration and the cosine-restart schedule against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainwell.after import average_predictions, expected_calibration_error, reliability_bins
from trainwell.after.averaging import AVERAGING, list_averaging
from trainwell.after.calibration import accuracy, log_loss
from trainwell.after.config import AVERAGING_NAMES, EnsembleConfig
from trainwell.errors import ConfigError

P1 = [[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]]
P2 = [[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.6, 0.2, 0.2]]
P3 = [[0.2, 0.7, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]]


def test_mean_of_probabilities_then_argmax():
    out = average_predictions([torch.tensor(P1), torch.tensor(P2), torch.tensor(P3)])
    by_hand = [[(0.7 + 0.5 + 0.2) / 3, (0.2 + 0.4 + 0.7) / 3, 0.1],
               [0.2, (0.5 + 0.2 + 0.4) / 3, (0.4 + 0.6 + 0.3) / 3],
               [1 / 3, 0.2, (0.4 + 0.2 + 0.8) / 3]]
    assert torch.allclose(out, torch.tensor(by_hand, dtype=torch.float64))
    assert out.argmax(1).tolist() == [0, 2, 2]  # row 0: 1.4/3 against 1.3/3


def test_geometric_mean_is_normalized():
    out = average_predictions(np.array([P1, P2]), method="geometric")
    assert isinstance(out, np.ndarray)
    row = np.sqrt(np.array(P1[1]) * np.array(P2[1]))  # (0.1*0.2, 0.5*0.2, 0.4*0.6) ** 0.5
    np.testing.assert_allclose(out[1], row / row.sum())
    np.testing.assert_allclose(out.sum(1), 1.0)
    # a zero does not veto a class outright: clamped at 1e-12
    z = average_predictions([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])], "geometric")
    np.testing.assert_allclose(z, [[0.5, 0.5]])


def test_vote_fractions_and_ties():
    out = average_predictions([P1, P2, P3], method="vote")
    # argmax labels: member 1 -> 0, 1, 2; member 2 -> 0, 2, 0; member 3 -> 1, 1, 2
    np.testing.assert_allclose(np.asarray(out), [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3],
                                                 [1 / 3, 0, 2 / 3]])
    tie = average_predictions([np.array([[0.1, 0.9]]), np.array([[0.8, 0.2]])], "majority")
    np.testing.assert_allclose(tie, [[0.5, 0.5]])
    assert int(np.argmax(tie[0])) == 0  # a tie goes to the lowest class index


def test_regression_averages_values_and_refuses_other_methods():
    out = average_predictions([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])],
                              task="regression")
    assert out.tolist() == [2.0, 4.0]
    with pytest.raises(ConfigError, match="regression"):
        average_predictions([np.ones(2), np.ones(2)], "vote", task="regression")


def test_bad_method_and_shapes_are_refused():
    with pytest.raises(ConfigError, match="geometric"):
        average_predictions([P1], method="median")
    with pytest.raises(ConfigError, match="shape"):
        average_predictions([np.ones((3, 3)), np.ones((2, 3))])
    with pytest.raises(ConfigError, match="at least one"):
        average_predictions([])


@pytest.mark.parametrize("name", list_averaging())
def test_registry_and_section_agree(name):
    assert set(list_averaging()) == set(AVERAGING_NAMES)
    for alias in AVERAGING_NAMES[name]:
        assert AVERAGING.canonical(alias) == name
        assert EnsembleConfig(method=alias).method == name
    probs = torch.softmax(torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0)), -1)
    out = average_predictions(probs, name)
    assert out.shape == (5, 3) and torch.allclose(out.sum(1), torch.ones(5, dtype=out.dtype))


def test_expected_calibration_error_by_hand():
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.65, 0.35], [0.55, 0.45], [0.3, 0.7]])
    y = np.array([0, 1, 0, 0, 1])
    # 5 bins: (0.8, 1]: conf 0.95, 0.9 -> acc 1/2; (0.6, 0.8]: 0.65, 0.7 -> acc 2/2;
    # (0.4, 0.6]: 0.55 -> acc 1
    by_hand = 2 / 5 * abs(0.5 - 0.925) + 2 / 5 * abs(1 - 0.675) + 1 / 5 * abs(1 - 0.55)
    assert expected_calibration_error(proba, y, bins=5) == pytest.approx(by_hand)
    table = reliability_bins(proba, y, bins=5)
    assert table["count"] == [0, 0, 1, 2, 2]
    assert math.isnan(table["accuracy"][0])
    assert table["confidence"][4] == pytest.approx(0.925)
    # the default is 15 bins; a perfectly calibrated bin contributes nothing
    assert expected_calibration_error([[0.5, 0.5], [0.5, 0.5]], [0, 1]) == 0.0
    assert accuracy(proba, y) == pytest.approx(4 / 5)
    assert log_loss(proba, y) == pytest.approx(
        -np.mean(np.log([0.95, 0.1, 0.65, 0.55, 0.7])))


def test_cosine_restarts_restarts_the_learning_rate():
    from trainwell.train.config import ScheduleConfig
    from trainwell.train.schedules import LRSchedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    cfg = ScheduleConfig(name="cosine_restarts", cycles=3)
    s = LRSchedule(opt, cfg, steps_per_epoch=4, epochs=6)  # cycles of 2 epochs = 8 steps
    lrs = [s.lr_at(i) for i in range(24)]
    for start in (0, 8, 16):
        assert lrs[start] == pytest.approx(0.1)  # each cycle starts at lr0
        for i in range(1, 8):  # then follows a cosine down
            t = i / 4
            assert lrs[start + i] == pytest.approx(0.05 * (1 + math.cos(math.pi * t / 2)))
    assert lrs[7] < lrs[8]
    assert EnsembleConfig().members == 5


@pytest.mark.parametrize("labels", [[5, 6], [0, -1]])
def test_calibration_refuses_labels_that_are_not_class_indices(labels):
    proba = [[0.9, 0.1], [0.2, 0.8]]
    for score in (expected_calibration_error, reliability_bins, accuracy, log_loss):
        with pytest.raises(ValueError, match="class indices 0 .. 1"):
            score(proba, labels)

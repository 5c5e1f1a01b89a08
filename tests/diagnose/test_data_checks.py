"""Data checks: a healthy split passes; each planted data bug gets its own finding."""

from __future__ import annotations

import pytest
import torch

from trainwell.diagnose import doctor


def _data(rep, check):
    found = rep.get(check)
    assert found, f"no finding {check}: {[f.check for f in rep.findings]}"
    return found[0]


def test_healthy_data_passes(digits):
    X, y = digits
    rep = doctor(
        torch.nn.Linear(64, 10), (X[:700], y[:700]), test=(X[700:], y[700:]), checks=["data"]
    )
    for check in (
        "data.finite",
        "data.scale",
        "data.balance",
        "data.leakage",
        "data.target_leak",
        "data.signal",
    ):
        assert _data(rep, check).status == "pass", check
    # digits has pixels that are always 0: a warning, never a failure
    assert _data(rep, "data.constant").status == "warn"
    assert rep.get("data.balance")[0].evidence["class_counts"] == torch.bincount(y[:700]).tolist()


def test_nan_inputs_fail(digits):
    X, y = digits
    X = X.clone()
    X[3, 5] = float("nan")
    X[4, 1] = float("inf")
    f = _data(doctor(torch.nn.Linear(64, 10), (X, y), checks=["data"]), "data.finite")
    assert f.status == "fail" and f.evidence["nonfinite_X"] == 2


def test_unscaled_features_fail_and_mean_std_are_reported(digits):
    X, y = digits
    scales = 10.0 ** torch.linspace(-3, 3, 64)
    f = _data(doctor(torch.nn.Linear(64, 10), (X * scales, y), checks=["data"]), "data.scale")
    assert f.status == "fail" and "standardize" in f.advice[0]
    std = (X * scales).std(0, unbiased=False)
    assert abs(f.evidence["std"][-1] - std[-1].item()) < 1e-3 * std[-1].item() + 1e-3


def test_train_test_duplicates_are_leakage(digits):
    X, y = digits
    test = (torch.cat([X[700:800], X[:100]]), torch.cat([y[700:800], y[:100]]))
    f = _data(
        doctor(torch.nn.Linear(64, 10), (X[:700], y[:700]), test=test, checks=["data"]),
        "data.leakage",
    )
    assert (
        f.status == "fail"
        and f.evidence["test_duplicates"] == 100
        and f.evidence["test_rows"] == 200
    )


def test_target_copied_into_a_feature_is_found(digits):
    X, y = digits
    Xl = torch.cat([X, y[:, None].float() / 3], 1)
    f = _data(doctor(torch.nn.Linear(65, 10), (Xl, y), checks=["data"]), "data.target_leak")
    assert f.status == "fail" and f.evidence["feature"] == 64


def test_shuffled_labels_have_no_signal(digits):
    X, y = digits
    y_bad = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    f = _data(doctor(torch.nn.Linear(64, 10), (X, y_bad), checks=["data"]), "data.signal")
    assert f.status == "fail" and "labels" in f.advice[0]
    assert f.evidence["heldout_accuracy"] < 0.25


def test_image_batch_picture_is_written(tmp_path, digits):
    X, y = digits
    imgs = X[:200].reshape(-1, 1, 8, 8)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    rep = doctor(model, (imgs, y[:200]), checks=["data"], out_dir=tmp_path)
    f = _data(rep, "data.batch")
    assert (tmp_path / f.evidence["path"]).stat().st_size > 1000


def test_imbalance_and_constant_features_warn_with_their_numbers(digits):
    X, y = digits
    keep = (y != 1) | (torch.arange(len(y)) % 20 == 0)  # class 1 cut to a handful of rows
    Xk, yk = X[keep], y[keep]
    Xk = torch.cat([Xk, torch.full((len(Xk), 1), 3.0)], 1)  # feature 64 is constant
    rep = doctor(torch.nn.Linear(65, 10), (Xk, yk), checks=["data"])
    bal = _data(rep, "data.balance")
    counts = torch.bincount(yk).tolist()
    assert bal.status == "warn" and bal.evidence["class_counts"] == counts
    assert bal.evidence["imbalance_ratio"] == max(counts) / min(counts) > 10
    const = _data(rep, "data.constant")
    assert const.status == "warn" and 64 in const.evidence["constant"]
    assert rep.exit_code == 0  # warnings do not fail


def test_batch_picture_shows_the_batch_the_model_receives(tmp_path, digits):
    X, y = digits
    imgs = X[:200].reshape(-1, 1, 8, 8) * 255  # an unnormalised batch stays visible as such
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    f = _data(doctor(model, (imgs, y[:200]), checks=["data"], out_dir=tmp_path), "data.batch")
    rows = torch.tensor(f.evidence["rows"])
    assert len(rows) == 32 and len(set(rows.tolist())) == 32
    assert f.evidence["labels"] == y[rows].tolist()
    batch = imgs[rows]
    assert f.evidence["value_range"] == pytest.approx([batch.min().item(), batch.max().item()])
    assert f.evidence["channel_mean"][0] == pytest.approx(batch.mean().item(), rel=1e-4)
    assert f.evidence["channel_std"][0] == pytest.approx(batch.std(unbiased=False).item(), rel=1e-4)
    assert "doctor_batch.png" in f.detail

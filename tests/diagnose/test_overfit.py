"""Overfit checks (lecture 004): one example, one minibatch, then a small sample."""

from __future__ import annotations

import torch

from trainwell.diagnose import DoctorConfig, doctor

FAST = DoctorConfig(overfit_iters=150, overfit_batches=4, batch_size=32)


def test_healthy_mlp_overfits_every_stage(digits, make_mlp):
    rep = doctor(make_mlp(), digits, checks=["overfit"], config=FAST)
    assert [f.check for f in rep.findings] == [
        "loss.task",
        "overfit.one",
        "overfit.batch",
        "overfit.sample",
    ]
    assert rep.status == "pass", rep.summary()
    one = rep.get("overfit.one")[0]
    assert one.evidence["loss"] < 0.05 and one.evidence["accuracy"] == 1.0
    assert rep.get("overfit.sample")[0].evidence["n"] == 128


def test_regression_overfits(digits, make_mlp):
    X, _ = digits
    y = (X[:, :3] @ torch.tensor([[1.0], [-2.0], [0.5]])) + 0.1
    rep = doctor(make_mlp(d_out=1), (X, y), checks=["overfit"], config=FAST)
    assert rep.info["task"] == "regression" and rep.status == "pass", rep.summary()


def test_dropout_099_cannot_overfit(digits, make_mlp):
    rep = doctor(make_mlp(dropout=0.99), digits, checks=["overfit"], config=FAST)
    failed = rep.by_status("fail")
    assert len(failed) == 1 and failed[0].check.startswith("overfit.")
    assert any("dropout p=0.99" in tip for tip in failed[0].advice)


def test_the_users_module_is_not_trained(digits, make_mlp):
    model = make_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    doctor(model, digits, checks=["overfit"], config=FAST)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

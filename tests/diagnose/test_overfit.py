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


def test_the_advice_says_whether_the_loss_went_down_at_all():
    import torch
    from sklearn.datasets import load_iris
    from torch import nn

    import trainwell

    X, y = load_iris(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    cases = [  # (data, config): a fit cut short, and labels a tiny net cannot learn
        ((X, torch.tensor(y)), {"overfit_iters": 10}, True),
        ((torch.randn(256, 4, generator=g), torch.randint(0, 3, (256,), generator=g)), None, False),
    ]
    for data, config, went_down in cases:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 32 if went_down else 4), nn.ReLU(),
                            nn.Linear(32 if went_down else 4, 3))
        report = trainwell.doctor(net, data, checks=["overfit"], config=config)
        f = next(f for f in report.findings if f.status == "fail")
        assert (f.evidence["loss"] < 0.5 * f.evidence["start_loss"]) == went_down
        text = " ".join(f.advice)
        assert ("goes down but not all the way" in text) == went_down
        assert ("does not go down" in text) == (not went_down)

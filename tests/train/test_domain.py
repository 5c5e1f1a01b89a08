"""Domain-adversarial training on the inter-twinning moons: it adapts where source-only training
does not, its lambda follows Ganin's schedule, the two data streams resume exactly, and bad
input is named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainwell.data.builtin import rotated_moons
from trainwell.errors import ConfigError, DataError
from trainwell.nn.heads import GradientReversal, MultiHead, dann_lr, grl_lambda
from trainwell.train import Trainer
from trainwell.train.domain import DannLR, DomainAdversarial, domain_adversarial_model


def t32(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def moons(angle=30.0, seed=0, n=300):
    """Labelled source, unlabelled target, and fresh labelled rows of both to evaluate on."""
    Xs, ys = rotated_moons(n, 0.1, angle, "source", seed)
    Xt, _ = rotated_moons(n, 0.1, angle, "target", seed)
    Xs2, ys2 = rotated_moons(1000, 0.1, angle, "source", seed + 100)
    Xt2, yt2 = rotated_moons(1000, 0.1, angle, "target", seed + 100)
    return (
        (t32(Xs), torch.as_tensor(ys)),
        t32(Xt),
        (t32(Xs2), torch.as_tensor(ys2)),
        (t32(Xt2), torch.as_tensor(yt2)),
    )


def model(seed=0):
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
    domain = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    return domain_adversarial_model(trunk, nn.Linear(32, 1), domain)


def fit(lambda_, epochs=60, seed=0, **kw):
    source, target, source_val, target_val = moons(seed=seed)
    obj = DomainAdversarial(target, target_eval=target_val, lambda_=lambda_, seed=seed)
    t = Trainer(
        model(seed),
        step=obj,
        epochs=epochs,
        batch_size=32,
        optimizer={"name": "adam", "lr": 0.01},
        seed=seed,
        **kw,
    )
    return t.fit(source, source_val)


def test_dann_beats_source_only_on_the_rotated_target():
    """lambda = 0 is source-only training of the same network on the same batches."""
    source_only = fit(0.0).history[-1]
    dann = fit(None).history[-1]
    assert source_only["val_accuracy"] > 0.98 and dann["val_accuracy"] > 0.98  # source kept
    assert source_only["val_target_accuracy"] < 0.82
    assert dann["val_target_accuracy"] > source_only["val_target_accuracy"] + 0.08
    # the domain classifier separates the domains without reversal, and is near chance with it
    assert source_only["train_domain_accuracy"] > 0.65
    assert abs(dann["train_domain_accuracy"] - 0.5) < 0.1


def test_lambda_follows_ganins_schedule_over_the_run():
    seen: list[tuple[int, float]] = []

    class Watch:
        def after_loss(self, trainer):
            grl = trainer.model.heads["domain"][0]
            seen.append((trainer.step, grl.lambda_))

    t = fit(None, epochs=3, callbacks=[Watch()])
    total = 3 * t.steps_per_epoch
    assert len(seen) == total
    for step, lam in seen:
        assert lam == pytest.approx(grl_lambda(step / total), abs=1e-12)
    assert t.history[-1]["train_grl_lambda"] == pytest.approx(grl_lambda((total - 1) / total))
    fixed = fit(0.3, epochs=1)
    assert fixed.history[-1]["train_grl_lambda"] == 0.3


def test_logs_domain_terms_and_target_metrics_only_with_target_labels():
    t = fit(None, epochs=2)
    last = t.history[-1]
    for name in ("train_label_loss", "train_domain_loss", "train_domain_accuracy"):
        assert math.isfinite(last[name])
    assert last["train_loss"] == pytest.approx(
        last["train_label_loss"] + last["train_domain_loss"], rel=1e-5
    )
    assert {"val_target_loss", "val_target_accuracy", "val_target_f1_macro"} <= set(last)
    source, target, source_val, _ = moons()
    unlabelled = Trainer(model(), step=DomainAdversarial(target), epochs=1, seed=0)
    unlabelled.fit(source, source_val)
    assert "val_accuracy" in unlabelled.history[-1]
    assert not any(k.startswith("val_target") for k in unlabelled.history[-1])


def test_target_labels_given_with_the_target_are_used_only_to_evaluate():
    source, target, source_val, _ = moons()
    ys_t = torch.as_tensor(rotated_moons(300, 0.1, 30.0, "target", 0)[1])
    a = Trainer(model(), step=DomainAdversarial(target), epochs=2, seed=0).fit(source, source_val)
    b = Trainer(model(), step=DomainAdversarial((target, ys_t)), epochs=2, seed=0)
    b.fit(source, source_val)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)  # the labels changed nothing in training
    assert "val_target_accuracy" in b.history[-1]


def test_each_step_draws_as_many_target_rows_passing_over_all_of_them():
    target = torch.arange(10.0).reshape(10, 1)
    obj = DomainAdversarial(target, lambda_=1.0, seed=3)
    rows = torch.cat([obj.draw_target(4) for _ in range(5)]).reshape(-1)  # two passes
    assert sorted(rows[:10].tolist()) == list(range(10))
    assert sorted(rows[10:20].tolist()) == list(range(10))
    again = DomainAdversarial(target, lambda_=1.0, seed=3)
    assert torch.equal(torch.cat([again.draw_target(4) for _ in range(5)]).reshape(-1), rows)


class KillAt:
    """Ends the fit as a kill would, when ``epoch`` starts (its predecessor is checkpointed)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def before_epoch(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_dann_resumes_exactly_with_both_data_streams(tmp_path):
    source, target, source_val, target_val = moons()

    def run(resume=None, ckpt=None, seed=0, callbacks=()):
        obj = DomainAdversarial(target, target_eval=target_val, seed=seed)
        t = Trainer(
            model(),
            step=obj,
            epochs=4,
            batch_size=32,
            seed=0,
            checkpoint_dir=ckpt,
            checkpoint_every=1,
            callbacks=callbacks,
        )
        return t.fit(source, source_val, resume=resume)

    full = run()
    with pytest.raises(KeyboardInterrupt):
        run(ckpt=tmp_path, callbacks=[KillAt(3)])
    # a different seed for the target stream: only a restored generator makes this identical
    resumed = run(resume=tmp_path, ckpt=tmp_path, seed=123)
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k} for r in h]  # noqa: E731
    assert len(resumed.history) == 4
    assert strip(resumed.history) == strip(full.history)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_domain_head_without_a_reversal_layer_gets_the_features_reversed():
    """The objective reverses the features itself: the same gradients as a built-in layer."""
    source, target, _, _ = moons()
    batch = (source[0][:16], source[1][:16])
    with_layer = model()
    plain = model()
    plain.heads["domain"] = plain.heads["domain"][1]  # the same classifier, no reversal layer
    grads = []
    for net in (with_layer, plain):
        obj = DomainAdversarial(target, lambda_=0.4, seed=0)
        obj.setup(net, batch)
        obj.loss(net, batch).loss.backward()
        grads.append([p.grad for p in net.trunk.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b)


def test_usable_in_a_loop_of_ones_own():
    source, target, _, _ = moons()
    net = model()
    obj = DomainAdversarial(target, total_steps=20, seed=0)
    obj.setup(net, (source[0][:32], source[1][:32]))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    lambdas = []
    for i in range(20):
        xb, yb = source[0][i * 8 : i * 8 + 8], source[1][i * 8 : i * 8 + 8]
        res = obj.loss(net, (xb, yb))
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        lambdas.append(net.heads["domain"][0].lambda_)
    assert lambdas[0] == 0.0 and lambdas[-1] == pytest.approx(grl_lambda(19 / 20))
    assert obj.epoch_end()["train_domain_accuracy"] > 0
    unbounded = DomainAdversarial(target)
    with pytest.raises(ConfigError, match=r"call setup\(model, first_batch\) first"):
        unbounded.loss(net, (source[0][:8], source[1][:8]))
    unbounded.setup(net, (source[0][:8], source[1][:8]))
    with pytest.raises(ConfigError, match="needs total_steps"):
        unbounded.loss(net, (source[0][:8], source[1][:8]))


def test_the_papers_learning_rate_schedule_as_a_callback():
    t = fit(None, epochs=2, callbacks=[DannLR()])
    total = 2 * t.steps_per_epoch
    assert t.history[0]["lr"] == pytest.approx(dann_lr((t.steps_per_epoch - 1) / total, 0.01))
    assert t.history[1]["lr"] == pytest.approx(dann_lr((total - 1) / total, 0.01))
    with pytest.raises(ConfigError, match="train.schedule must be constant, got 'cosine'"):
        fit(None, epochs=1, callbacks=[DannLR()], schedule="cosine")


# ------------------------------------------------------------------ bad input


def test_a_target_whose_features_do_not_match_the_source_is_named():
    source, _, source_val, _ = moons()
    obj = DomainAdversarial(torch.randn(50, 3))
    with pytest.raises(
        DataError,
        match=r"target rows have shape \(3,\) but the source rows have "
        r"\(2,\): the target domain must have the source's features",
    ):
        Trainer(model(), step=obj, epochs=1, seed=0).fit(source, source_val)
    obj = DomainAdversarial(torch.randn(50, 2), target_eval=(torch.randn(9, 4), torch.zeros(9)))
    with pytest.raises(DataError, match=r"target_eval rows have shape \(4,\)"):
        obj.setup(model(), (source[0][:4], source[1][:4]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": torch.zeros(0, 2)}, DataError, "target holds no rows"),
        ({"target": (torch.zeros(5, 2), torch.zeros(4))}, DataError, "5 rows but 4 labels"),
        ({"target": "moons.csv"}, ConfigError, "target must be a tensor or array"),
        ({"target_eval": torch.zeros(5, 2)}, ConfigError, "target_eval must be a pair"),
        ({"lambda_": -1.0}, ConfigError, "lambda_ must be a finite number >= 0"),
        ({"gamma": 0.0}, ConfigError, "gamma must be a finite number > 0; got 0.0"),
        ({"total_steps": 0}, ConfigError, "total_steps must be an integer >= 1; got 0"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(kwargs, error, message):
    args = {"target": torch.zeros(5, 2), **kwargs}
    with pytest.raises(error, match=message):
        DomainAdversarial(args.pop("target"), **args)


def test_a_model_without_the_heads_is_named():
    batch = (torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ConfigError, match="features\\(x\\) and named heads"):
        DomainAdversarial(torch.randn(9, 2)).setup(nn.Linear(2, 1), batch)
    two = MultiHead(nn.Linear(2, 4), {"label": nn.Linear(4, 1), "dom": nn.Linear(4, 1)})
    with pytest.raises(
        ConfigError, match="domain_head 'domain' is not a head of the model; heads: label, dom"
    ):
        DomainAdversarial(torch.randn(9, 2)).setup(two, batch)
    wide = MultiHead(nn.Linear(2, 4), {"label": nn.Linear(4, 1), "domain": nn.Linear(4, 2)})
    with pytest.raises(ConfigError, match="must give one logit per row .* it gives 2"):
        DomainAdversarial(torch.randn(9, 2)).setup(wide, batch)
    assert isinstance(model().heads["domain"][0], GradientReversal)

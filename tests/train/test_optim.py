"""Optimizers by the lectures' names: defaults, validation, and each one lowers a loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.train.config import OPTIMIZER_NAMES, OPTIMIZER_TABLE, OptimizerConfig
from trainwell.train.optim import (
    list_optimizers,
    make_optimizer,
    optimizer_class,
    optimizer_config,
)


def _problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 5, generator=g)
    y = X @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(128, 1, generator=g)
    return X, y


@pytest.mark.parametrize("name", list_optimizers())
def test_each_optimizer_lowers_the_loss(name):
    torch.manual_seed(0)
    X, y = _problem()
    model = nn.Linear(5, 1)
    opt = make_optimizer({"name": name, "lr": 0.05}, model)  # the defaults, one lr for all
    first = nn.functional.mse_loss(model(X), y).item()
    for _ in range(60):
        loss = nn.functional.mse_loss(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert nn.functional.mse_loss(model(X), y).item() < 0.5 * first


def test_lecture_defaults():
    m = nn.Linear(2, 1)
    adam = make_optimizer("adam", m).param_groups[0]
    assert (adam["lr"], tuple(adam["betas"])) == (1e-3, (0.9, 0.999))  # lecture 002
    assert make_optimizer("momentum", m).param_groups[0]["momentum"] == 0.9
    nest = make_optimizer("nesterov", m).param_groups[0]
    assert nest["nesterov"] and nest["momentum"] == 0.9
    assert make_optimizer("rmsprop", m).param_groups[0]["alpha"] == 0.99  # decay_rate
    assert isinstance(make_optimizer("adamw", m), torch.optim.AdamW)
    assert make_optimizer({"name": "adam", "lr": 0.01}, m).param_groups[0]["lr"] == 0.01


def test_adam_matches_torch_reference_steps():
    torch.manual_seed(0)
    X, y = _problem()
    a, b = nn.Linear(5, 1), nn.Linear(5, 1)
    b.load_state_dict(a.state_dict())
    ours = make_optimizer("adam", a)
    ref = torch.optim.Adam(b.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    for model, opt in ((a, ours), (b, ref)):
        for _ in range(20):
            loss = nn.functional.mse_loss(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)


def test_adamw_decay_is_decoupled_from_l2_penalty():
    # with a zero gradient, AdamW still shrinks weights by lr * wd; Adam's coupled decay goes
    # through the adaptive step instead, so the two differ
    w1 = nn.Parameter(torch.ones(3))
    opt = make_optimizer({"name": "adamw", "lr": 0.1, "weight_decay": 0.5}, [w1])
    w1.grad = torch.zeros(3)
    opt.step()
    torch.testing.assert_close(w1.detach(), torch.full((3,), 1 - 0.1 * 0.5))


def test_optimizer_config_errors_name_field_and_allowed():
    with pytest.raises(Exception, match="did you mean 'adam'"):
        OptimizerConfig(name="adma")
    msg = "momentum does not apply to 'adam', which takes: betas, eps, lr, weight_decay"
    with pytest.raises(Exception, match=msg):
        OptimizerConfig(name="adam", momentum=0.9)
    with pytest.raises(Exception, match="betas must be two floats"):
        OptimizerConfig(name="adam", betas=(0.9, 1.0))
    OptimizerConfig(name="sgd", momentum=0.0)  # boundary accepted


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("name", list_optimizers())
def test_trainwell_optimizers_step_exactly_as_torch_and_share_its_state_dict(name, fused):
    """The unguarded methods (no torch._dynamo import) give torch's updates, bit for bit."""
    X, y = _problem()
    torch.manual_seed(1)
    ours_model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    ref_model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    ref_model.load_state_dict(ours_model.state_dict())
    ours = make_optimizer({"name": name, "lr": 0.03, "fused": fused}, ours_model)
    assert type(ours).__module__ == "trainwell.train.optim"  # torch's class, with _Eager mixed in
    torch_cls = next(c for c in type(ours).__mro__ if c.__module__.startswith("torch.optim."))
    takes = torch_cls.__init__.__code__.co_varnames
    kwargs = {k: v for k, v in ours.defaults.items() if k in takes}
    ref = torch_cls(ref_model.parameters(), **kwargs)
    for _ in range(6):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            nn.functional.mse_loss(model(X), y).backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b)
    # the state_dict is torch's: each loads the other's
    state = ours.state_dict()
    ref.load_state_dict(state)
    ours.load_state_dict(ref.state_dict())
    assert ours.state_dict()["param_groups"] == state["param_groups"]


def test_training_with_trainwell_optimizers_does_not_import_dynamo():
    """torch's compile guards import torch._dynamo (~0.8 s); trainwell's optimizers skip them."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, torch
        from torch import nn
        from trainwell.train.optim import make_optimizer
        from trainwell.train.schedules import LRSchedule
        model = nn.Linear(3, 2)
        for name in ("adam", "nesterov", "rmsprop", "adagrad", "adamw"):
            opt = make_optimizer(name, model)
            LRSchedule(opt, "onecycle", 2, 2)
            y = torch.tensor([0, 1, 0, 1])
            nn.functional.cross_entropy(model(torch.randn(4, 3)), y).backward()
            opt.step()
            opt.zero_grad()
            opt.load_state_dict(opt.state_dict())
        print("torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grad_scaler_drives_the_fused_optimizer_as_it_drives_torchs():
    """fp16 training's GradScaler (here on the CPU) hands the fused kernel its scale and skips
    the step whose gradients overflow, through trainwell's unguarded step as through torch's."""
    torch.manual_seed(0)
    ours_model, ref_model = nn.Linear(4, 3), nn.Linear(4, 3)
    ref_model.load_state_dict(ours_model.state_dict())
    ours = make_optimizer({"name": "adam", "lr": 0.01, "fused": True}, ours_model)
    ref = torch.optim.Adam(ref_model.parameters(), lr=0.01, fused=True)
    scalers = [torch.amp.GradScaler("cpu", init_scale=1024.0) for _ in range(2)]
    X, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for i in range(4):
        for model, opt, scaler in ((ours_model, ours, scalers[0]), (ref_model, ref, scalers[1])):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X), y) * (float("inf") if i == 2 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    assert scalers[0].get_scale() == scalers[1].get_scale() == 512.0  # the overflow halved it
    for a, b in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES.names(aliases=True))
def test_every_optimizer_name_and_alias_builds_its_registered_torch_class(name):
    canonical = OPTIMIZER_NAMES.canonical(name)
    torch_name, defaults = OPTIMIZER_TABLE[canonical]
    opt = make_optimizer(name, nn.Linear(2, 1))
    assert isinstance(opt, getattr(torch.optim, torch_name))
    assert type(opt) is optimizer_class(canonical)
    group = opt.param_groups[0]
    assert {k: group[k] for k in defaults} == defaults  # the lectures' defaults (lecture 002)


def test_make_optimizer_refuses_bad_specs_with_a_config_error():
    m = nn.Linear(2, 1)
    with pytest.raises(ConfigError, match="invalid train.optimizer:(?s:.*)did you mean 'adam'"):
        make_optimizer("adma", m)
    with pytest.raises(ConfigError, match="momentum does not apply to 'adam'"):
        make_optimizer({"name": "adam", "momentum": 0.9}, m)
    assert optimizer_config("sgd_nesterov") == OptimizerConfig(name="nesterov")

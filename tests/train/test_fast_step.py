"""The optimizer step without torch's wrapper while nothing listens, and with it when a step hook
or a profiler does."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.train.optim import make_optimizer


def setup(name="adam"):
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    ref = nn.Linear(4, 2)
    ref.load_state_dict(net.state_dict())
    ours = make_optimizer({"name": name, "lr": 0.1}, net)
    fused = isinstance(ours.defaults.get("fused"), bool) and ours.defaults["fused"]
    theirs = torch.optim.Adam(ref.parameters(), lr=0.1, fused=fused or None)
    return net, ref, ours, theirs


def grads(*nets):
    x = torch.randn(8, 4)
    for net in nets:
        for p in net.parameters():
            p.grad = None
        net(x).square().sum().backward()


def test_step_hooks_fire_and_updates_match_torchs_own_optimizer():
    net, ref, ours, theirs = setup()
    calls: list[str] = []
    for _ in range(3):  # unwatched steps
        grads(net, ref)
        ours.step()
        theirs.step()
    pre = ours.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    post = ours.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    grads(net, ref)
    ours.step()
    theirs.step()
    assert calls == ["pre", "post"]
    pre.remove()
    post.remove()
    grads(net, ref)
    ours.step()
    theirs.step()
    assert calls == ["pre", "post"]
    from torch.optim.optimizer import register_optimizer_step_post_hook

    global_hook = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: calls.append("global"))
    try:
        grads(net, ref)
        ours.step()
    finally:
        global_hook.remove()
    assert calls[-1] == "global"
    theirs.step()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_profiler_sees_the_optimizer_step():
    net, _ref, ours, _theirs = setup()
    grads(net)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        ours.step()
    names = {e.name for e in prof.events()}
    assert "Optimizer.step#Adam.step" in names

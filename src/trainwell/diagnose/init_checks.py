"""Initialization checks on a real batch (lecture 001's activation statistics, automated)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainwell.diagnose.problem import Problem
from trainwell.diagnose.report import Finding
from trainwell.diagnose.stats import (
    ACTIVATIONS,
    DROPOUT_LAYERS,
    capture,
    grad_norms,
    layer_map,
    watched_modules,
)

KAIMING = "use Kaiming init, std = sqrt(2 / fan_in), for ReLU layers (lecture 001)"
XAVIER = ("use the lectures' Xavier init, std = 1 / sqrt(fan_in) (model.init lecun_normal), for "
          "tanh/sigmoid layers (lecture 001)")
BATCHNORM = (
    "add BatchNorm before the activation to keep each layer's input at unit scale (lecture 000/001)"
)


def _train_mode_no_dropout(model: nn.Module) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, DROPOUT_LAYERS):
            m.eval()


def init_statistics(
    p: Problem, model: nn.Module, n: int
) -> tuple[dict[str, Any], dict[str, float], float]:
    """Per-layer activation stats, per-layer gradient norms and the loss on one real batch."""
    gen = torch.Generator().manual_seed(p.seed)
    idx = torch.randperm(len(p.X), generator=gen)[:n]
    xb, yb = p.X[idx], p.target(p.y[idx])
    _train_mode_no_dropout(model)
    model.zero_grad(set_to_none=True)
    mods = dict(watched_modules(model))
    mods.update({name: mod for name, (mod, _label) in layer_map(model).items()})
    with capture(model, list(mods.items()), hist=True) as acts:
        out = model(xb)
    loss = p.loss(out, yb)
    if torch.isfinite(loss):
        loss.backward()
    grads = grad_norms(model)
    model.zero_grad(set_to_none=True)
    return dict(acts), grads, float(loss.detach())


def _constant_params(model: nn.Module) -> list[str]:
    out = []
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(w, nn.Parameter) and w.ndim >= 2 and w.shape[0] > 1 and w.detach().std() == 0:
            out.append(name)
    return out


def check_init(p: Problem, cfg: Any) -> tuple[list[Finding], dict[str, Any]]:
    model = p.fresh()
    all_acts, grads, _ = init_statistics(p, model, cfg.stats_batch)
    watched = {name for name, _ in watched_modules(model)}
    acts = {k: v for k, v in all_acts.items() if k in watched}
    found: list[Finding] = []
    names = list(acts)
    hidden = names[:-1] if len(names) > 1 and not watched_modules_are_activations(model) else names

    # symmetric units: every unit of a layer computes the same value (all-zero or constant init)
    sym = [k for k in hidden if acts[k].get("sym") and acts[k]["dead_frac"] < 1.0]
    const = _constant_params(model)
    if sym or const:
        found.append(
            Finding(
                "init.symmetry",
                "fail",
                "units start identical: the init does not break symmetry",
                f"in {', '.join(sym or const)} every unit outputs the same value for every "
                f"example; layers with constant weights: {const or 'none'}. Identical units get "
                "identical gradients and never differ.",
                {"symmetric_layers": sym, "constant_weight_layers": const},
                [
                    "initialize weights randomly (Kaiming for ReLU, Xavier for tanh), never all "
                    "zeros (lecture 000)"
                ],
            )
        )
    else:
        found.append(Finding("init.symmetry", "pass", "units start different (random init)"))

    live = [k for k in hidden if k not in sym and acts[k]["finite"]]
    # dead ReLUs: units whose output is 0 on the whole batch
    dead = {k: acts[k]["dead_frac"] for k in live if acts[k]["kind"] in {"relu", "relu_like"}}
    if dead:
        worst = max(dead, key=lambda k: dead[k])
        frac = dead[worst]
        detail = (
            f"{frac:.0%} of the units of {worst} output 0 on all {cfg.stats_batch} examples of "
            "the batch."
        )
        ev = {"dead_frac": dead}
        adv = [
            KAIMING,
            "check the biases: a large negative bias keeps a ReLU off; init them at 0",
            "try Leaky ReLU / ELU, or a smaller learning rate",
        ]
        if frac >= cfg.dead_frac:
            found.append(Finding("init.dead_relu", "fail", "dead ReLUs at init", detail, ev, adv))
        elif frac >= cfg.dead_frac / 4:
            found.append(
                Finding("init.dead_relu", "warn", "some ReLUs are dead at init", detail, ev, adv)
            )
        else:
            found.append(Finding("init.dead_relu", "pass", "ReLU units are alive", detail, ev))

    # saturation: tanh |a| > 0.99, sigmoid a < 0.01 or > 0.99
    sat = {k: acts[k]["sat_frac"] for k in live if acts[k]["kind"] in {"tanh", "sigmoid"}}
    if sat:
        worst = max(sat, key=lambda k: sat[k])
        frac = sat[worst]
        detail = f"{frac:.0%} of the activations of {worst} are saturated (local gradient ~ 0)."
        adv = [
            XAVIER,
            BATCHNORM,
            "or use ReLU, which does not saturate for positive inputs (lecture 000)",
        ]
        if frac >= cfg.sat_frac:
            found.append(
                Finding(
                    "init.saturation",
                    "fail",
                    "saturated tanh/sigmoid units at init",
                    detail,
                    {"sat_frac": sat},
                    adv,
                )
            )
        elif frac >= cfg.sat_frac / 3:
            found.append(
                Finding(
                    "init.saturation",
                    "warn",
                    "some tanh/sigmoid units saturate",
                    detail,
                    {"sat_frac": sat},
                    adv,
                )
            )
        else:
            found.append(
                Finding(
                    "init.saturation",
                    "pass",
                    "tanh/sigmoid units are not saturated",
                    detail,
                    {"sat_frac": sat},
                )
            )

    dead_layers = {k for k, v in dead.items() if v >= cfg.dead_frac}
    found.append(_scale_trend(acts, [k for k in live if k not in dead_layers]))
    weights = {
        name: mod.weight.detach().float().norm().item()
        for name, mod in model.named_modules()
        if name in grads and isinstance(getattr(mod, "weight", None), torch.Tensor)
    }
    found.append(_grad_trend(grads, weights))
    # doctor.json's activation_stats use the monitor's layer names (weighted layers, each with the
    # statistics of the activation that follows it), so "init" and "end" line up
    layers: dict[str, Any] = {}
    for name, (_mod, label) in layer_map(model).items():
        if name in all_acts:
            s = all_acts[name]
            keys = ("act_mean", "act_std", "dead_frac", "sat_frac", "hist")
            layers[label] = {k: s.get(k) for k in keys}
            layers[label]["grad_norm"] = grads.get(label)
    return found, {"layers": layers, "grad_norm": grads}


def watched_modules_are_activations(model: nn.Module) -> bool:
    return any(isinstance(m, ACTIVATIONS) for _, m in watched_modules(model))


def _scale_trend(acts: dict[str, Any], live: list[str]) -> Finding:
    """Activations that shrink (vanish) or grow (explode) layer over layer."""
    stds = [(k, acts[k]["act_std"]) for k in live if acts[k]["kind"] != "sigmoid"]
    ev: dict[str, Any] = {"act_std": dict(stds)}
    nonfinite = [k for k in acts if not acts[k]["finite"]]
    if nonfinite:
        return Finding(
            "init.scale",
            "fail",
            "activations overflow at init",
            f"{nonfinite[0]} produces NaN/inf on a real batch.",
            ev,
            ["standardize the inputs", KAIMING, XAVIER],
        )
    if len(stds) < 2:
        return Finding("init.scale", "pass", "activation scale is stable", evidence=ev)
    first, last = stds[0][1], stds[-1][1]
    steps = len(stds) - 1
    per_layer = (last / first) ** (1 / steps) if first > 0 and last > 0 else 0.0
    ev.update(first_std=first, last_std=last, per_layer_ratio=per_layer)
    detail = (
        f"activation std goes from {first:.3g} ({stds[0][0]}) to {last:.3g} ({stds[-1][0]}), "
        f"x{per_layer:.2f} per layer."
    )
    if last < 1e-3 or (per_layer < 0.7 and last / max(first, 1e-12) < 0.3):
        return Finding(
            "init.vanishing",
            "fail",
            "activations vanish layer over layer",
            detail,
            ev,
            ["the init std is too small: " + KAIMING, XAVIER, BATCHNORM],
        )
    if last > 1e3 or (per_layer > 1.5 and last / first > 5):
        return Finding(
            "init.exploding",
            "fail",
            "activations grow layer over layer",
            detail,
            ev,
            ["the init std is too large: " + KAIMING, XAVIER, BATCHNORM, "standardize the inputs"],
        )
    return Finding("init.scale", "pass", "activation scale is stable across layers", detail, ev)


def _grad_trend(grads: dict[str, float], weights: dict[str, float] | None = None) -> Finding:
    """Gradient norms: vanishing towards the first layers, tiny everywhere, or huge.

    Lecture 001: with a too-small init every local gradient is ~0 and nothing learns; the
    first/max ratio alone misses that (x shrinks forward while dL/dx shrinks backward, so every
    layer's ||dL/dW|| is equally tiny), hence also ||dL/dW|| / ||W|| of the best layer.
    """
    ev: dict[str, Any] = {"grad_norm": grads}
    vals = [g for g in grads.values()]
    if not vals:
        return Finding("init.gradients", "pass", "no weight gradients to compare", evidence=ev)
    if any(not math.isfinite(g) for g in vals):
        return Finding(
            "init.gradients",
            "fail",
            "gradients are NaN/inf at init",
            "",
            ev,
            ["standardize the inputs", "check the loss for log(0) or division by zero"],
        )
    first, top = vals[0], max(vals)
    ratio = first / top if top > 0 else 0.0
    ev["first_over_max"] = ratio
    detail = (
        f"gradient norm of the first layer is {first:.3g}, the largest is {top:.3g} "
        f"(ratio {ratio:.2g})."
    )
    rel = [grads[k] / w for k, w in (weights or {}).items() if w > 0]
    if rel and top > 0 and max(rel) < 1e-3:
        ev["max_grad_over_weight"] = max(rel)
        return Finding(
            "init.gradients",
            "fail" if max(rel) < 1e-4 else "warn",
            "gradients are tiny in every layer: almost no learning signal",
            f"the largest ||dL/dW|| / ||W|| over the layers is {max(rel):.2g} (the largest "
            f"gradient norm is {top:.3g}); a too-small init gives ~0 local gradients "
            "(lecture 001).",
            ev,
            ["the init std is too small: " + KAIMING, XAVIER, BATCHNORM],
        )
    if top == 0 or ratio < 1e-4:
        return Finding(
            "init.gradients",
            "fail",
            "gradients vanish before they reach the first layers",
            detail,
            ev,
            [KAIMING, XAVIER, BATCHNORM],
        )
    if ratio < 1e-2:
        return Finding(
            "init.gradients",
            "warn",
            "gradients shrink strongly towards the first layers",
            detail,
            ev,
            [KAIMING, XAVIER, BATCHNORM],
        )
    if top > 1e3:
        return Finding(
            "init.gradients",
            "warn",
            "very large gradients at init",
            detail,
            ev,
            ["standardize the inputs", "lower the learning rate or clip gradients"],
        )
    return Finding(
        "init.gradients", "pass", "gradient norms are balanced across layers", detail, ev
    )

"""Several heads: domain-adversarial training and multitask learning against their baselines.

DANN (issue 14): the inter-twinning moons of Ganin et al. (JMLR 2016): 300 labelled source rows
(two moons, noise 0.1) and 300 unlabelled target rows (the same moons rotated by ANGLE degrees
about their centre), a 2-32-32 ReLU MLP trunk, a one-logit label head and a 32-32-1 domain
classifier; Adam lr 0.01, batches of 32 source + 32 target rows, 120 epochs, Ganin's lambda
schedule. Source-only is the same network, data order and steps with lambda = 0: the trunk then
gets the label loss's gradient only (the domain classifier still learns, on unadapted features:
its accuracy shows how far apart the domains are). Accuracies are of the last epoch's weights
on 1000 fresh source and 1000 fresh target rows; neither those nor any target label is used to
train or to select a model.

Multitask: the ``multitask`` built-in table (10 features from 3 latent factors; a 3-class
``label`` and a regression ``value``), 1000 training rows of which only 10% carry a label and
all a value, 2000 test rows. A shared trunk (10-64-64, both heads on it) against two separate
single-task networks of the same total parameter count, and against a label-only network of the
shared one's width. Adam lr 3e-3, batch 64, 150 epochs.

    nice python benchmarks/heads.py --seeds 5 --threads 1

Each table shows medians over the seeds, the change, and in how many seeds the method won.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from torch import nn

from trainwell.data.builtin import multitask_table, rotated_moons
from trainwell.nn.heads import MultiHead
from trainwell.train import Trainer
from trainwell.train.domain import DomainAdversarial, domain_adversarial_model
from trainwell.train.multitask import Multitask

ANGLES = (20, 30, 35, 40, 50)
TARGETS = {30: (0.734, 0.906), 35: (0.649, 0.831), 50: (0.391, 0.775)}  # issue 14, measured


def _t(a, dtype=torch.float32):
    return torch.as_tensor(a, dtype=dtype)


def _mlp(sizes):
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------- DANN


def dann_run(angle: float, seed: int, lambda_: float | None, epochs: int) -> dict[str, float]:
    """One fit; ``lambda_ = 0`` is the source-only baseline (the same network and steps)."""
    Xs, ys = rotated_moons(300, 0.1, angle, "source", seed)
    Xt, _ = rotated_moons(300, 0.1, angle, "target", seed)  # unlabelled: labels dropped
    Xs_test, ys_test = rotated_moons(1000, 0.1, angle, "source", 10_000 + seed)
    Xt_test, yt_test = rotated_moons(1000, 0.1, angle, "target", 10_000 + seed)
    torch.manual_seed(seed)
    model = domain_adversarial_model(
        _mlp([2, 32, 32]), nn.Linear(32, 1), _mlp([32, 32]).append(nn.Linear(32, 1))
    )
    step = DomainAdversarial(
        _t(Xt), target_eval=(_t(Xt_test), _t(yt_test, torch.int64)), lambda_=lambda_, seed=seed
    )
    t = Trainer(
        model,
        step=step,
        epochs=epochs,
        batch_size=32,
        optimizer={"name": "adam", "lr": 0.01},
        seed=seed,
    )
    t.fit((_t(Xs), _t(ys, torch.int64)), (_t(Xs_test), _t(ys_test, torch.int64)))
    last = t.history[-1]  # the last epoch's weights (the trainer then restores the best val_loss)
    return {
        "source": last["val_accuracy"],
        "target": last["val_target_accuracy"],
        "domain": last["train_domain_accuracy"],
    }


def dann_table(seeds: int, epochs: int) -> None:
    print(f"\nDANN on rotated two moons: target (and source) accuracy, median of {seeds} seeds")
    head = (
        f"{'angle':>5} | {'source-only':>11} {'DANN':>6} {'gain':>6} {'ratio':>6} | "
        f"{'wins':>5} | {'src SO':>6} {'src DANN':>8} | {'dom SO':>6} {'dom DANN':>8} | "
        "issue (SO -> DANN)"
    )
    print(head)
    print("-" * len(head))
    for angle in ANGLES:
        so = [dann_run(angle, s, 0.0, epochs) for s in range(seeds)]
        da = [dann_run(angle, s, None, epochs) for s in range(seeds)]
        med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
        wins = sum(d["target"] > s["target"] for s, d in zip(so, da, strict=True))
        a, b = med(so, "target"), med(da, "target")
        issue = TARGETS.get(angle)
        ref = f"{issue[0]:.1%} -> {issue[1]:.1%}" if issue else ""
        print(
            f"{angle:>5} | {a:>11.1%} {b:>6.1%} {b - a:>+6.1%} {b / a:>6.2f} | "
            f"{wins:>2}/{seeds:<2} | {med(so, 'source'):>6.1%} {med(da, 'source'):>8.1%} | "
            f"{med(so, 'domain'):>6.1%} {med(da, 'domain'):>8.1%} | {ref}"
        )
        print(
            "      per seed target: SO "
            + " ".join(f"{r['target']:.3f}" for r in so)
            + " | DANN "
            + " ".join(f"{r['target']:.3f}" for r in da),
            flush=True,
        )


# ---------------------------------------------------------------------------- multitask


def _params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _separate_width(shared: int, n_in: int, n_classes: int) -> int:
    """The trunk width w of two separate n_in-w-w nets (+ their heads) closest to ``shared``."""

    def count(w: int) -> int:
        nets = [_mlp([n_in, w, w]).append(nn.Linear(w, k)) for k in (n_classes, 1)]
        return _params(*nets)

    return min(range(8, 129), key=lambda w: abs(count(w) - shared))


def multitask_run(seed: int, epochs: int, labelled: float) -> dict[str, float]:
    X, Y = multitask_table(3000, labelled_label=labelled, random_state=seed)
    _, Y_full = multitask_table(3000, random_state=seed)  # the same rows, every label kept
    Xtr, Ytr = _t(X[:1000]), _t(Y[:1000])
    Xte, Yte = _t(X[1000:]), _t(Y_full[1000:])
    kw = {
        "epochs": epochs,
        "batch_size": 64,
        "optimizer": {"name": "adam", "lr": 3e-3},
        "seed": seed,
    }
    heads = {"label": {"task": "multiclass"}, "value": {"task": "regression"}}

    torch.manual_seed(seed)
    shared = MultiHead(_mlp([10, 64, 64]), {"label": nn.Linear(64, 3), "value": nn.Linear(64, 1)})
    t = Trainer(shared, step=Multitask(heads), **kw).fit((Xtr, Ytr))
    res_shared = t.evaluate((Xte, Yte), "test")

    w = _separate_width(_params(shared), 10, 3)
    torch.manual_seed(seed)
    sep_label = MultiHead(_mlp([10, w, w]), {"label": nn.Linear(w, 3)})
    sep_value = MultiHead(_mlp([10, w, w]), {"value": nn.Linear(w, 1)})
    r_label = (
        Trainer(sep_label, step=Multitask({"label": {"task": "multiclass", "target": 0}}), **kw)
        .fit((Xtr, Ytr))
        .evaluate((Xte, Yte), "test")
    )
    r_value = (
        Trainer(sep_value, step=Multitask({"value": {"task": "regression", "target": 1}}), **kw)
        .fit((Xtr, Ytr))
        .evaluate((Xte, Yte), "test")
    )
    torch.manual_seed(seed)
    wide = MultiHead(_mlp([10, 64, 64]), {"label": nn.Linear(64, 3)})
    r_wide = (
        Trainer(wide, step=Multitask({"label": {"task": "multiclass", "target": 0}}), **kw)
        .fit((Xtr, Ytr))
        .evaluate((Xte, Yte), "test")
    )
    return {
        "shared_acc": res_shared["test_label_accuracy"],
        "shared_r2": res_shared["test_value_r2"],
        "sep_acc": r_label["test_label_accuracy"],
        "sep_r2": r_value["test_value_r2"],
        "wide_acc": r_wide["test_label_accuracy"],
        "params_shared": _params(shared),
        "params_sep": _params(sep_label, sep_value),
        "width_sep": w,
    }


def multitask_table_(seeds: int, epochs: int, labelled: float) -> None:
    runs = [multitask_run(s, epochs, labelled) for s in range(seeds)]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    r0 = runs[0]
    print(
        f"\nMultitask table, {labelled:.0%} of the training rows labelled for 'label', all for "
        f"'value': test metrics, median of {seeds} seeds"
    )
    print(
        f"parameters: shared trunk {r0['params_shared']}, separate nets {r0['params_sep']} "
        f"(two 10-{r0['width_sep']}-{r0['width_sep']} trunks)"
    )
    head = (
        f"{'metric':<16} | {'separate':>8} {'label-only 64':>13} {'shared':>7} | "
        f"{'change':>7} {'ratio':>6} | {'wins vs separate':>16}"
    )
    print(head)
    print("-" * len(head))
    acc_wins = sum(r["shared_acc"] > r["sep_acc"] for r in runs)
    r2_wins = sum(r["shared_r2"] > r["sep_r2"] for r in runs)
    a, b = med("sep_acc"), med("shared_acc")
    print(
        f"{'label accuracy':<16} | {a:>8.1%} {med('wide_acc'):>13.1%} {b:>7.1%} | "
        f"{b - a:>+7.1%} {b / a:>6.2f} | {acc_wins:>7}/{seeds}"
    )
    a, b = med("sep_r2"), med("shared_r2")
    print(
        f"{'value R^2':<16} | {a:>8.3f} {'':>13} {b:>7.3f} | {b - a:>+7.3f} {b / a:>6.2f} | "
        f"{r2_wins:>7}/{seeds}"
    )
    print(
        "  per seed label accuracy: separate "
        + " ".join(f"{r['sep_acc']:.3f}" for r in runs)
        + " | shared "
        + " ".join(f"{r['shared_acc']:.3f}" for r in runs)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=120, help="DANN epochs")
    p.add_argument("--mt-epochs", type=int, default=150, help="multitask epochs")
    p.add_argument("--labelled", type=float, default=0.1, help="multitask: labelled fraction")
    p.add_argument("--only", choices=["dann", "multitask"], default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.seeds} seeds")
    t0 = time.perf_counter()
    if args.only in (None, "dann"):
        dann_table(args.seeds, args.epochs)
    if args.only in (None, "multitask"):
        multitask_table_(args.seeds, args.mt_epochs, args.labelled)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

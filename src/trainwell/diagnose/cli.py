"""Commands of the doctor: ``trainwell doctor`` and ``trainwell lab init-stats``."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_config_args, add_trust_code_arg

    p = sub.add_parser(
        "doctor",
        help="run the sanity-check recipe (data, init, loss, overfit, LR) on a config",
        description="Run the lectures' sanity-check recipe on the data and model of CONFIG. "
        "Writes doctor.json into --out (default: <runs_dir>/<name>-doctor/). Exit code 1 when a "
        "check fails, 0 otherwise, 2 on a bad config.",
    )
    add_config_args(p)
    p.add_argument(
        "--apply", metavar="OUT.toml", help="write the config with the suggested lr here"
    )
    p.add_argument(
        "--gradcheck",
        action="store_true",
        help="also compare autograd with finite differences (for custom layers)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="folder for doctor.json (default <runs_dir>/<name>-doctor)"
    )
    p.add_argument(
        "--verbose-findings", action="store_true", help="show detail for passing checks too"
    )
    add_trust_code_arg(p)
    p.set_defaults(func=_doctor)

    lab = sub.add_parser("lab", help="classroom experiments from the lectures")
    labsub = lab.add_subparsers(dest="lab_command", metavar="EXPERIMENT")
    lab.set_defaults(func=lambda args: (lab.print_help(), 2)[1])
    q = labsub.add_parser(
        "init-stats",
        help="lecture 001: activation statistics of a deep net under five inits",
        description="Lecture 001's experiment: a batch of unit-Gaussian inputs through DEPTH "
        "layers of width WIDTH under tanh/0.01, tanh/0.05, tanh/Xavier, ReLU/Xavier and "
        "ReLU/Kaiming; prints per-layer mean and std and writes the histograms.",
    )
    q.add_argument("--width", type=int, default=4096)
    q.add_argument("--depth", type=int, default=6)
    q.add_argument("--batch", type=int, default=16)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--out",
        metavar="PNG",
        default="init_stats.png",
        help="histogram figure (default init_stats.png)",
    )
    q.set_defaults(func=_init_stats)


def _doctor(args: argparse.Namespace) -> int:
    import logging
    import time

    from trainwell.cli import (
        REPORT_LIBRARIES,
        TRAINING_LIBRARIES,
        import_libraries,
        load_config_from_args,
    )
    from trainwell.diagnose.from_config import apply_suggestion, default_out_dir, doctor_from_config
    from trainwell.errors import ConfigError

    cfg = load_config_from_args(args)
    if args.apply and "lr" not in cfg.doctor.checks:
        raise ConfigError(
            f"doctor --apply needs the 'lr' check to suggest a learning rate; doctor.checks is "
            f"{cfg.doctor.checks} (add 'lr')"
        )
    out = args.out or default_out_dir(cfg)
    import_libraries(*TRAINING_LIBRARIES, *REPORT_LIBRARIES)
    t0 = time.perf_counter()
    logging.getLogger("trainwell").info("running the doctor on %s", args.config)
    inputs: dict[str, object] = {}
    if cfg.model.init_from is not None:  # the pretrained model, and its scratch baseline
        from trainwell.after.transfer import doctor_inputs

        inputs = doctor_inputs(cfg)
    report = doctor_from_config(cfg, gradcheck=args.gradcheck, out_dir=out, **inputs)
    path = report.save(out)
    print(report.summary(verbose=args.verbose_findings))
    print(f"wrote {path} ({time.perf_counter() - t0:.1f}s)")
    if args.apply:
        dest = apply_suggestion(cfg, report, args.apply)
        print(f"wrote {dest} with train.optimizer.lr = {report.suggested_lr:.3g}")
    return report.exit_code


def _init_stats(args: argparse.Namespace) -> int:
    from trainwell.diagnose.lab import init_stats, plot_init_stats
    from trainwell.errors import ConfigError

    for name in ("width", "depth", "batch"):
        if getattr(args, name) < 1:
            raise ConfigError(
                f"lab init-stats: --{name} must be an integer >= 1; got {getattr(args, name)}"
            )
    results = init_stats(args.width, args.depth, args.batch, args.seed, keep=True)
    for setup, layers in results.items():
        print(setup)
        for i, s in enumerate(layers, 1):
            print(f"  layer {i}: mean {s['mean']:+.2f}  std {s['std']:.2f}")
    path = plot_init_stats(results, args.out)
    print(f"wrote {path}")
    return 0

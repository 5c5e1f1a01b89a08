"""Top-level commands that belong to no one subpackage: ``check``."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_config_args

    p = sub.add_parser("check", help="validate a config without running anything")
    add_config_args(p)
    p.add_argument("--print", dest="show", action="store_true", help="print the resolved config")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from trainwell.cli import load_config_from_args

    cfg = load_config_from_args(args)
    if args.show:
        print(cfg.to_toml(), end="")
    print(f"{args.config}: config is valid")
    if cfg.model.arch.startswith("python:"):
        module = cfg.model.arch.split(":")[1]
        print(
            f"{args.config}: model.arch = {cfg.model.arch!r} imports and runs the Python module "
            f"{module!r}: train, predict, doctor, tune and model summary run it only with "
            "--trust-code (see docs/trust.md)"
        )
    return 0

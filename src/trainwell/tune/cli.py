"""``trainwell tune``: search hyperparameters (one search, or the coarse-to-fine recipe)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    """Add ``tune`` to the subcommands ``sub`` (what ``ArgumentParser.add_subparsers`` returns)."""
    from trainwell.cli import add_trust_code_arg

    p: argparse.ArgumentParser = sub.add_parser(
        "tune",
        help="search hyperparameters: grid, random, Bayesian; --recipe for coarse-to-fine",
        description="Search the [tune] space of CONFIG; results go to a study directory "
        "(study.db, study.json, trials.csv, best_config.toml, trials/<n>/).",
    )
    # CONFIG may be left out with --resume (the study keeps its config), so it is optional here
    # while the other commands' add_config_args makes it required
    p.add_argument(
        "config", nargs="?", default=None, metavar="CONFIG",
        help="experiment TOML file (left out with --resume)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set tune.trials=50 (repeatable)",
    )
    p.add_argument(
        "--recipe",
        action="store_true",
        help="coarse random search on short trials, then refine with Bayesian optimization, "
        "then train the best in full",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="K", help="worker processes on this machine"
    )
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL of a shared study, e.g. postgresql://user@host/db",
    )
    p.add_argument("--resume", default=None, metavar="STUDY_DIR", help="continue an existing study")
    p.add_argument(
        "--name", default=None, metavar="N", help="the study directory's name under runs_dir"
    )
    p.add_argument("--top", type=int, default=10, help="rows of the leaderboard to print")
    add_trust_code_arg(p)
    p.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    from trainwell.errors import ConfigError

    if args.config is None and args.resume is None:
        raise ConfigError("trainwell tune needs CONFIG, or --resume STUDY_DIR")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {args.workers}")
    import logging
    import sys

    from trainwell.cli import TRAINING_LIBRARIES, import_libraries
    from trainwell.config import load_config
    from trainwell.tune.study import tune

    if args.config is not None:
        load_config(args.config, args.overrides)  # a bad config is refused before torch loads
    # loaded once, before the workers are forked, rather than by each worker at the same moment
    import_libraries(*TRAINING_LIBRARIES)

    # one line per finished trial on the terminal (library code only logs)
    tune_log = logging.getLogger("trainwell.tune")
    if tune_log.getEffectiveLevel() > logging.INFO:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        tune_log.addHandler(handler)
        tune_log.setLevel(logging.INFO)
        tune_log.propagate = False
    study = tune(
        args.config,
        recipe=args.recipe,
        workers=args.workers,
        storage=args.storage,
        resume=args.resume,
        name=args.name,
        sets=args.overrides,
    )
    print(study.leaderboard(args.top))
    print(f"study: {study.dir}")
    best_toml = study.dir / "best_config.toml"
    if study.best_config is not None and best_toml.exists():
        print(f"best config: {best_toml} (train it with: trainwell train {best_toml})")
    elif best_toml.exists():  # algorithm selection won by a scikit-learn candidate
        params = {k: v for k, v in study.best_params.items() if k != "candidate"}
        print(
            f"best: the scikit-learn candidate {study.best_params.get('candidate')!r} {params} "
            f"(recorded in {best_toml}; `trainwell train` trains networks only)"
        )
    if study.final_run is not None:
        print(f"final run: {study.final_run}")
    return 0

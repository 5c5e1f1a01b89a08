"""``trainwell ensemble``: train or assemble an ensemble directory (argparse only at import)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_trust_code_arg

    p = sub.add_parser(
        "ensemble", help="train N members (or snapshots, or a study's best trials) as one model",
        description="Train the members of an ensemble from CONFIG (its [ensemble] section, or "
        "--members / --snapshot), or combine the --top K trials of a study without "
        "retraining, or finish a killed ensemble with --resume ENS. The ensemble directory "
        "works with trainwell predict, trainwell report and trainwell.load like a run.")
    p.add_argument("config", metavar="CONFIG", nargs="?", help="experiment TOML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--members", type=int, metavar="N", help="number of members "
                   "(ensemble.members)")
    p.add_argument("--method", metavar="NAME",
                   help="mean (of probabilities, default), geometric, vote or snapshot")
    p.add_argument("--snapshot", type=int, metavar="M",
                   help="a snapshot ensemble: one run with M cosine cycles, a member per cycle")
    p.add_argument("--jobs", metavar="J",
                   help="members trained at once, one thread each (default: ensemble.jobs, "
                        "auto: the idle cores)")
    p.add_argument("--from-study", dest="from_study", metavar="STUDY",
                   help="a study directory (trainwell tune) whose best trials become members")
    p.add_argument("--top", type=int, metavar="K", help="with --from-study: how many trials")
    p.add_argument("--resume", metavar="ENS", help="finish a killed ensemble directory")
    p.add_argument("--name", help="ensemble directory name under runs_dir")
    add_trust_code_arg(p)
    p.set_defaults(func=_ensemble)


def _jobs(text: str | None) -> int | str | None:
    from trainwell.errors import ConfigError

    if text is None or text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"--jobs must be auto or a whole number >= 1; got {text!r}")
    return value


def _ensemble(args: argparse.Namespace) -> int:
    from trainwell.cli import REPORT_LIBRARIES, TRAINING_LIBRARIES, import_libraries
    from trainwell.errors import ConfigError

    if not (args.config or args.from_study or args.resume):
        raise ConfigError("trainwell ensemble needs a CONFIG file, --from-study STUDY or "
                          "--resume ENS")
    jobs = _jobs(args.jobs)
    if args.config and not args.resume and not args.from_study:
        from trainwell.config import load_config

        load_config(args.config, args.overrides)  # a bad config is refused before torch loads
    import_libraries(*TRAINING_LIBRARIES, *REPORT_LIBRARIES)
    from trainwell.ensemble_run import ensemble

    ens = ensemble(args.config, members=args.members, method=args.method,
                   snapshot=args.snapshot, jobs=jobs, name=args.name,
                   from_study=args.from_study, top=args.top, resume=args.resume,
                   overrides=args.overrides, quiet=args.quiet)
    res = ens.results
    scores = ", ".join(f"{k} {v:.4g}" for k, v in res["ensemble"].items())
    mean = ", ".join(f"{k} {v:.4g}" for k, v in res["members_mean"].items())
    print(f"ensemble {ens.run_dir}: {res['n_members']} members ({res['method']}); test {scores}"
          f"\nmembers' mean: {mean}")
    if (ens.run_dir / "report.html").exists():
        print(f"report: {ens.run_dir / 'report.html'}")
    return 0

"""Commands ``train``, ``predict`` and ``demo`` (argparse only at import; torch when they run)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_trust_code_arg

    p = sub.add_parser("train", help="train a model from a config; leaves a run directory",
                       description="Train from CONFIG, or continue a killed run with --resume RUN.")
    p.add_argument("config", metavar="CONFIG", nargs="?",
                   help="experiment TOML file (not with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.optimizer.lr=0.01 "
                        "(repeatable; not with --resume)")
    p.add_argument("--name",
                   help="run directory name under runs_dir (default: config name, else data-arch)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue RUN (a run directory) from its last checkpoint, with its own "
                        "config.toml")
    p.add_argument("--nproc", type=_positive_int, metavar="N",
                   help="train one model data-parallel in N processes on this machine (launches "
                        "torchrun; train.batch_size is the global batch; docs/distributed.md)")
    p.add_argument("--allow-world-size-change", dest="allow_world_size_change",
                   action="store_true",
                   help="with --resume: continue a run trained by another number of processes "
                        "(not bit-identical to an uninterrupted run)")
    add_trust_code_arg(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="predict with a trained run on new data",
                       description="Apply RUN's fitted preprocessing and model to INPUT (CSV, "
                       "Parquet, NPZ or an image folder) and write labels and probabilities to "
                       "--out.")
    p.add_argument("run", metavar="RUN", help="a run directory")
    p.add_argument("input", metavar="INPUT", help="CSV, Parquet, NPZ file or image folder")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file: .csv, .parquet or .npz")
    p.add_argument("--tta", action="store_true",
                   help="average the probabilities over test-time views (the flips and shifts "
                        "training used; see docs/tta.md)")
    p.add_argument("--mc-samples", dest="mc_samples", type=_positive_int, default=0,
                   metavar="N",
                   help="average N passes with dropout and the other stochastic layers "
                        "sampling (Monte Carlo dropout) and add an uncertainty column")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the Monte Carlo passes (default 0): same seed, same output")
    add_trust_code_arg(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("demo", help="train an MLP on the bundled digits set (under a minute)")
    p.add_argument("--name", help="run directory name (default: demo-digits, made unique)")
    p.set_defaults(func=_demo)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {text!r}")
    return value


def _summary(run) -> str:
    test = run.results.get("test", {})
    parts = [f"{k.removeprefix('test_')} {v:.4g}" for k, v in test.items()]
    best = f"best epoch {run.results.get('best_epoch')}"
    stop = ", stopped early" if run.results.get("stopped_early") else ""
    scores = ", ".join(parts) if parts else "split empty"
    line = f"run {run.run_dir}: {best}{stop}; test {scores}"
    if run.results.get("compile_time") is not None:  # train.compile, apart from the epochs
        line += f"; compiled in {run.results['compile_time']:.1f} s"
    for key, how in (("test_tta", "with TTA"), ("test_mc", "with Monte Carlo passes")):
        averaged = run.results.get(key) or {}
        if averaged:
            line += f"\ntest {how}: " + ", ".join(
                f"{k.removeprefix('test_')} {v:.4g}" for k, v in averaged.items())
    if (run.run_dir / "report.html").exists():
        line += f"\nreport: {run.run_dir / 'report.html'}"
    return line


def _train(args: argparse.Namespace) -> int:
    from trainwell.api import fit
    from trainwell.cli import REPORT_LIBRARIES, TRAINING_LIBRARIES, import_libraries
    from trainwell.config import load_config
    from trainwell.errors import ConfigError

    if args.resume and args.config:
        raise ConfigError("give either CONFIG or --resume RUN, not both")
    if not args.resume and not args.config:
        raise ConfigError("trainwell train needs a CONFIG file (or --resume RUN)")
    if args.resume and args.name:
        raise ConfigError("--name does not apply to --resume RUN: the run keeps its directory")
    drawing: tuple[str, ...] = ()
    if args.config:  # a bad config is refused before torch loads
        drawing = REPORT_LIBRARIES if load_config(args.config, args.overrides).log.report else ()
    if args.nproc is not None:  # N processes under torchrun, each running this command
        return _launch(args)
    import_libraries(*TRAINING_LIBRARIES, *drawing)
    if args.resume:
        run = fit(resume=args.resume, quiet=args.quiet, overrides=args.overrides,
                  allow_world_size_change=args.allow_world_size_change)
    else:  # the path, so that a python:module:factory beside the config is found
        run = fit(args.config, name=args.name, quiet=args.quiet, overrides=args.overrides)
    from trainwell.train.distributed import is_main_process

    if is_main_process():  # data-parallel: rank 0 speaks for the run
        print(_summary(run))
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``trainwell train ... --nproc N``: the same command in N processes under torchrun, after
    the config (and the global batch against N) is checked here."""
    from pathlib import Path

    from trainwell.config import load_config
    from trainwell.train.distributed import check_world_batch, launch

    path = Path(args.resume) / "config.toml" if args.resume else args.config
    if not args.resume or Path(path).is_file():  # a missing run is reported by the processes
        check_world_batch(load_config(path, args.overrides).train.batch_size, args.nproc)
    worker = ["trainwell", *(["-v"] * args.verbose), "train"]
    worker += ["--resume", args.resume] if args.resume else [args.config]
    for override in args.overrides:
        worker += ["--set", override]
    worker += ["--name", args.name] if args.name else []
    worker += ["--quiet"] if args.quiet else []
    worker += ["--allow-world-size-change"] if args.allow_world_size_change else []
    worker += ["--trust-code"] if getattr(args, "trust_code", False) else []
    return launch(args.nproc, worker)


def _demo(args: argparse.Namespace) -> int:
    from importlib.resources import as_file, files

    from trainwell.api import fit
    from trainwell.cli import REPORT_LIBRARIES, TRAINING_LIBRARIES, import_libraries
    from trainwell.config import load_config
    from trainwell.runs import unique_name

    with as_file(files("trainwell") / "examples" / "demo.toml") as path:
        cfg = load_config(path)
    import_libraries(*TRAINING_LIBRARIES, *REPORT_LIBRARIES)
    from pathlib import Path

    name = args.name or unique_name(Path(cfg.runs_dir), cfg.name or "demo-digits")
    run = fit(cfg, name=name, quiet=args.quiet)
    print(_summary(run))
    print(f"predict with it: trainwell predict {run.run_dir} INPUT.csv --out predictions.csv")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwell.api import load
    from trainwell.cli import TRAINING_LIBRARIES, import_libraries
    from trainwell.errors import ConfigError

    out = Path(args.out)
    if out.suffix.lower() not in {".csv", ".parquet", ".npz"}:
        raise ConfigError(f"--out must end in .csv, .parquet or .npz; got {out.name!r}")
    import_libraries(*TRAINING_LIBRARIES)
    predictor = load(args.run)
    table = predictor.predict_table(args.input, tta=args.tta, mc_samples=args.mc_samples,
                                    seed=args.seed)
    import io

    from trainwell.runs import write_bytes_atomic

    buf = io.BytesIO()  # the whole file, then written at once: a failed write leaves none
    if out.suffix.lower() == ".npz":
        import numpy as np

        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in table.items()}
        np.savez(buf, **arrays)
    else:
        import pandas as pd

        frame = pd.DataFrame(table)
        if out.suffix.lower() == ".csv":
            frame.to_csv(buf, index=False)
        else:
            frame.to_parquet(buf, index=False)
    write_bytes_atomic(out, buf.getvalue())
    print(f"wrote {len(table['id'])} predictions to {out}")
    return 0

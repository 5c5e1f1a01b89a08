"""``trainwell report RUN [RUN ...] [--out FILE]``: a run's, a study's or a comparison's page;
``trainwell report --compare RUN RUN ...``: the comparison of many runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML report of a run or study, or compare several runs",
        description=(
            "One run directory: (re)write RUN/report.html. One study directory: write "
            "STUDY/report.html. Several run directories: write a page comparing them "
            "(default comparison.html in the current directory)."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="RUN", help="run or study directories")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="where to write the page (default: inside the run or study directory; "
                        "comparison.html for several runs)")
    p.add_argument("--compare", action="store_true",
                   help="compare the runs: a table of their config differences and results, "
                        "filterable by column, and their curves overlaid (the default for "
                        "several runs)")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from trainwell.cli import REPORT_LIBRARIES, import_libraries
    from trainwell.errors import RunError
    from trainwell.report import write_comparison, write_run_report, write_study_report
    from trainwell.report.rundata import is_run_dir, is_study_dir

    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.is_dir():
            raise RunError(f"{p} is not a directory; give a run directory (runs/<name>) "
                           "or a study directory")
    if getattr(args, "compare", False):
        _check_comparable(paths)
    import_libraries(*REPORT_LIBRARIES)
    if len(paths) == 1 and not getattr(args, "compare", False):
        path = paths[0]
        if (path / "ensemble.json").is_file():  # an ensemble directory
            from trainwell.after.report import write_ensemble_report

            out = write_ensemble_report(path, args.out)
        elif is_study_dir(path):
            out = write_study_report(path, args.out)
        elif is_run_dir(path):
            out = write_run_report(path, args.out)
        else:
            inside = sorted(p.name for p in path.iterdir() if is_run_dir(p) or is_study_dir(p))
            hint = ""
            if inside:
                shown = ", ".join(inside[:5]) + (", ..." if len(inside) > 5 else "")
                hint = (f"; it holds run or study directories ({shown}): give one of them, "
                        "or several runs to compare them")
            raise RunError(f"{path} is neither a run directory (with meta.json, metrics.jsonl, "
                           "config.toml or results.json) nor a study directory (with "
                           f"study.json, study.db or trials.csv){hint}")
    else:
        seen: set[Path] = set()
        for p in paths:
            if p.resolve() in seen:
                raise RunError(f"{p} is given twice; compare different run directories")
            seen.add(p.resolve())
        studies = [str(p) for p in paths if is_study_dir(p)]
        if studies:
            raise RunError(f"only run directories can be compared; {', '.join(studies)} "
                           "is a study directory: report it on its own")
        ensembles = [str(p) for p in paths if (p / "ensemble.json").is_file()]
        if ensembles:
            raise RunError(f"only run directories can be compared; {', '.join(ensembles)} "
                           "is an ensemble directory: report it on its own (its page "
                           "compares its members), or compare its members/<k> run directories")
        out = write_comparison(paths, args.out or "comparison.html")
    print(f"wrote {out}")
    return 0


def _check_comparable(paths: list[Path]) -> None:
    """``--compare``: at least two paths, each a run directory (before anything is written)."""
    from trainwell.errors import RunError
    from trainwell.report.rundata import RUN_MARKERS, is_run_dir

    if len(paths) < 2:
        raise RunError(f"--compare needs at least 2 run directories; got {len(paths)}")
    for p in paths:
        if not is_run_dir(p):
            raise RunError(f"{p} is not a run directory: it holds none of "
                           f"{', '.join(RUN_MARKERS)} (or it is a study directory); "
                           "--compare takes run directories (runs/<name>)")

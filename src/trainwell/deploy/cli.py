"""Command ``export`` (argparse only at import; torch when it runs)."""

from __future__ import annotations

import argparse

FORMAT_NAMES = ("onnx", "torchscript", "torch.export")


def add_commands(sub: argparse._SubParsersAction) -> None:
    from trainwell.cli import add_trust_code_arg

    p = sub.add_parser(
        "export", help="write a run's model with its preprocessing as one ONNX / TorchScript / "
        "torch.export file",
        description="Write RUN's model, fitted preprocessing and label mapping as one file that "
        "predicts without trainwell, checked against the run's predictor on its test split "
        "(docs/export.md).")
    p.add_argument("run", metavar="RUN", help="a completed run directory")
    p.add_argument("--format", dest="fmt", default="onnx", metavar="FORMAT",
                   help=f"one of {', '.join(FORMAT_NAMES)} (default onnx; onnx needs "
                        "pip install 'trainwell[onnx]')")
    p.add_argument("--out", metavar="PATH",
                   help="the file to write (default: RUN/model.onnx, RUN/model.torchscript.pt "
                        "or RUN/model.pt2)")
    add_trust_code_arg(p)
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from trainwell.deploy.export import check_format

    check_format(args.fmt)  # an unknown format is refused before torch loads
    from trainwell.cli import TRAINING_LIBRARIES, import_libraries

    import_libraries(*TRAINING_LIBRARIES)
    from trainwell.deploy.export import export

    done = export(args.run, args.fmt, args.out, trust_code=args.trust_code)
    print(f"wrote {done.path} ({done.format}): outputs equal the run's predictor within "
          f"{done.max_difference:.1g} on {done.rows} rows ({done.checked_on})")
    return 0

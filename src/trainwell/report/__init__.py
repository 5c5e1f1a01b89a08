"""Reports: a self-contained ``report.html`` per run and per study, comparisons, TensorBoard.

Public names are imported lazily, so that the command line and config loading stay light.

Example:
    >>> from trainwell.report import write_run_report
    >>> write_run_report("runs/iris-mlp")  # doctest: +SKIP
    PosixPath('runs/iris-mlp/report.html')
"""

from __future__ import annotations

from trainwell._lazy import lazy_getattr

_LAZY = {
    "LiveReport": "trainwell.report.live",
    "LogConfig": "trainwell.report.config",
    "TensorBoardLogger": "trainwell.report.tensorboard",
    "write_comparison": "trainwell.report.compare_report",
    "write_run_report": "trainwell.report.run_report",
    "write_study_report": "trainwell.report.study_report",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)

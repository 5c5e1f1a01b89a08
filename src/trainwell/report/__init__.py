"""Reports: a self-contained ``report.html`` per run and per study, comparisons, TensorBoard.

Example:
    >>> from trainwell.report import write_run_report
    >>> write_run_report("runs/iris-mlp")  # doctest: +SKIP
    PosixPath('runs/iris-mlp/report.html')
"""

from __future__ import annotations

from trainwell.report.compare_report import write_comparison
from trainwell.report.config import LogConfig
from trainwell.report.run_report import write_run_report
from trainwell.report.study_report import write_study_report

__all__ = ["LogConfig", "TensorBoardLogger", "write_comparison", "write_run_report",
           "write_study_report"]


def __getattr__(name: str):  # noqa: ANN202 - lazy, so that importing the package stays light
    if name == "TensorBoardLogger":
        from trainwell.report.tensorboard import TensorBoardLogger

        return TensorBoardLogger
    raise AttributeError(f"module 'trainwell.report' has no attribute {name!r}")

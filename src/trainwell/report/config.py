"""The ``[log]`` section."""

from __future__ import annotations

from pydantic import Field, field_validator

from trainwell.schema import Section


class LogConfig(Section):
    """What a run writes besides its metrics: the HTML report, TensorBoard events, MLflow."""

    tensorboard: bool = Field(
        default=False,
        description="also write scalars and weight/gradient histograms to <run>/tensorboard "
                    "(needs `pip install tensorboard`)",
    )
    report: bool = Field(default=True, description="write <run>/report.html at the end of the run")
    report_every: int = Field(
        default=10, ge=0,
        description="also refresh <run>/report.html during training, every this many epochs "
                    "(0: only at the end); refreshes never take more than 5% of the training "
                    "time",
    )
    report_interval_s: float = Field(
        default=60.0, gt=0,
        description="refresh report.html at an epoch's end once this many seconds have passed "
                    "since the last refresh, whatever report_every says (long epochs)",
    )
    tensorboard_step_every: int = Field(
        default=10, ge=0,
        description="with tensorboard: the training loss by optimizer step, averaged over "
                    "every this many steps (1: every step; 0: none)",
    )
    mlflow: bool | str = Field(
        default=False,
        description="also log the run to MLflow: true (a file store at <runs_dir>/mlruns), a "
                    "folder, a file: URI, an http(s):// tracking server or a database URI "
                    "(needs `pip install 'trainwell[mlflow]'`)",
    )

    @field_validator("mlflow")
    @classmethod
    def _tracking_uri(cls, value: bool | str) -> bool | str:
        from trainwell.report.mlflow_log import check_tracking_uri

        return check_tracking_uri(value)

"""The ``[log]`` section."""

from __future__ import annotations

from pydantic import Field

from trainwell.schema import Section


class LogConfig(Section):
    """What a run writes besides its metrics: the HTML report and TensorBoard events."""

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

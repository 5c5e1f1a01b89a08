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
    tensorboard_step_every: int = Field(
        default=10, ge=0,
        description="with tensorboard: the training loss by optimizer step, averaged over "
                    "every this many steps (1: every step; 0: none)",
    )

"""The ``[doctor]`` section: which checks run, their budgets and their tolerances."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from trainwell.schema import Section

CHECKS = ("data", "init", "initial_loss", "overfit", "lr", "gradcheck", "transfer")


class DoctorConfig(Section):
    """Settings of ``trainwell doctor`` and of the in-training monitor.

    The defaults follow lecture 002's recipe (check the initial loss, overfit a small sample,
    find an LR that makes the loss go down within ~100 iterations, probe 1e-1 ... 1e-4).
    """

    enabled: bool = Field(
        default=False, description="run the doctor before training in `trainwell train`"
    )
    monitor: bool = Field(default=True, description="collect in-training statistics (stats.jsonl)")
    monitor_every: int = Field(default=50, ge=1, description="sample the statistics every N steps")
    checks: list[str] = Field(
        default_factory=lambda: ["data", "init", "initial_loss", "overfit", "lr"],
        description="which check groups run (gradcheck is added by --gradcheck)",
    )
    gradcheck: bool = Field(
        default=False, description="also compare autograd with finite differences"
    )
    batch_size: int = Field(default=64, ge=1, description="minibatch size of the doctor's loops")
    stats_batch: int = Field(default=256, ge=2, description="samples in the init-statistics batch")
    loss_tolerance: float = Field(
        default=0.3,
        gt=0.0,
        le=5.0,
        description="relative tolerance of the initial loss around its expected value (log C ...)",
    )
    overfit_iters: int = Field(
        default=300, ge=10, description="iteration budget of each overfit stage"
    )
    overfit_batches: int = Field(
        default=8, ge=1, le=64, description="minibatches in the small sample"
    )
    overfit_lr: float = Field(default=1e-3, gt=0.0, description="Adam LR of the overfit loops")
    lr_iters: int = Field(default=100, ge=10, description="iterations of the LR range test")
    lr_min: float = Field(default=1e-6, gt=0.0, description="first LR of the range test")
    lr_max: float = Field(default=10.0, gt=0.0, description="last LR of the range test")
    probe_lrs: list[float] = Field(
        default_factory=lambda: [1e-1, 1e-2, 1e-3, 1e-4], description="LRs of the coarse probe"
    )
    probe_iters: int = Field(
        default=100, ge=10, description="iterations per LR of the coarse probe"
    )
    dead_frac: float = Field(
        default=0.4, ge=0.0, le=1.0, description="dead-ReLU fraction that fails"
    )
    sat_frac: float = Field(
        default=0.3, ge=0.0, le=1.0, description="saturated fraction that fails"
    )

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, v: list[str]) -> list[str]:
        from trainwell.registry import unknown_name_message

        for name in v:
            if name not in CHECKS:
                raise ValueError(unknown_name_message("doctor check", name, list(CHECKS)))
        return v

    @field_validator("probe_lrs")
    @classmethod
    def _positive_lrs(cls, v: list[float]) -> list[float]:
        if not v or any(not lr > 0 for lr in v):
            raise ValueError("doctor.probe_lrs must be a non-empty list of positive floats")
        return v

    @model_validator(mode="after")
    def _lr_range(self) -> DoctorConfig:
        if self.lr_max <= self.lr_min:
            raise ValueError(
                f"doctor.lr_max must be greater than doctor.lr_min ({self.lr_min}); "
                f"got {self.lr_max}"
            )
        return self

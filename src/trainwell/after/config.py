"""The ``[ensemble]`` section: how ``trainwell ensemble`` trains and combines its members.

This module imports no torch; the averaging methods it names are registered in
:mod:`trainwell.after.averaging` (a test checks that the two agree).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from trainwell.schema import Section

#: how members' predictions combine -> aliases (lecture 002: the mean of the probabilities)
AVERAGING_NAMES: dict[str, tuple[str, ...]] = {
    "mean": ("average", "probability"),
    "geometric": ("geometric_mean",),
    "vote": ("majority", "majority_vote"),
}
#: ``method`` may also be this: one run with cyclic cosine restarts, a member per cycle
SNAPSHOT = "snapshot"


class EnsembleConfig(Section):
    """The ``[ensemble]`` section (see docs/after.md); read by ``trainwell ensemble`` only."""

    members: PositiveInt = Field(
        default=5, description="members to train; with method = \"snapshot\": the cycles"
    )
    method: str = Field(
        default="mean", description="mean (of probabilities), geometric, vote, or snapshot "
        "(one run with cosine restarts, a member per cycle, combined by the mean)"
    )
    seeds: list[int] | None = Field(
        default=None, description="one seed per member; default: seed, seed + 1, ..."
    )
    configs: list[str] | None = Field(
        default=None, description="one config file per member (paths relative to this "
        "config); default: every member trains this config"
    )
    jobs: Literal["auto"] | PositiveInt = Field(
        default="auto", description="members trained at once, each in its own process with "
        "one thread; auto: the idle cores"
    )
    ece_bins: PositiveInt = Field(
        default=15, description="bins of the expected calibration error and reliability diagram"
    )

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        name = v.lower()
        if name == SNAPSHOT:
            return name
        for canonical, aliases in AVERAGING_NAMES.items():
            if name == canonical or name in aliases:
                return canonical
        allowed = ", ".join([*AVERAGING_NAMES, SNAPSHOT])
        raise ValueError(f"ensemble.method {v!r} is not known; allowed: {allowed}")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if any(s < 0 for s in v):
                raise ValueError(f"ensemble.seeds must be >= 0; got {v}")
            if len(set(v)) != len(v):
                raise ValueError(f"ensemble.seeds must differ from each other; got {v}")
        return v

    @model_validator(mode="after")
    def _counts(self) -> EnsembleConfig:
        if self.configs is not None:
            if not self.configs:
                raise ValueError("ensemble.configs is empty; name one config per member or "
                                 "remove it")
            if self.method == SNAPSHOT:
                raise ValueError("ensemble.configs does not apply to method = \"snapshot\" "
                                 "(one run gives every member); remove one of the two")
            if "members" in self.model_fields_set and self.members != len(self.configs):
                raise ValueError(f"ensemble.members: {self.members} members, but "
                                 f"ensemble.configs names {len(self.configs)} configs; give "
                                 "one config per member (or leave members out)")
        n = self.count
        if self.seeds is not None and len(self.seeds) != n and self.method != SNAPSHOT:
            raise ValueError(f"ensemble.seeds has {len(self.seeds)} seeds for {n} members; "
                             "give one per member")
        return self

    @property
    def count(self) -> int:
        """The number of members: one per config when ``configs`` is given."""
        return len(self.configs) if self.configs else self.members


__all__ = ["AVERAGING_NAMES", "SNAPSHOT", "EnsembleConfig"]

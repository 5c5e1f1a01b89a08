"""The ``[tune]`` section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from trainwell.schema import Section


class TuneConfig(Section):
    method: Literal["grid", "random", "bayes", "tpe", "gp", "cmaes"] = "bayes"
    trials: int = Field(default=30, ge=1)
    space: dict[str, Any] = Field(default_factory=dict)

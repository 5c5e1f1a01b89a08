"""The ``[train]`` section."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from trainwell.schema import Section


class TrainConfig(Section):
    loss: str = "auto"
    optimizer: dict[str, Any] = Field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    schedule: dict[str, Any] = Field(default_factory=lambda: {"name": "constant"})
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=64, ge=1)

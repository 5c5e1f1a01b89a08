"""The ``[model]`` section."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from trainwell.schema import Section


class ModelConfig(Section):
    arch: str = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    activation: str | dict[str, Any] = "relu"
    init: str | dict[str, Any] = "auto"
    norm: str = "none"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

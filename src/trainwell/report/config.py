"""The ``[log]`` section."""

from __future__ import annotations

from trainwell.schema import Section


class LogConfig(Section):
    tensorboard: bool = False
    report: bool = True

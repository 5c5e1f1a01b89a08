"""The ``[doctor]`` section."""

from __future__ import annotations

from trainwell.schema import Section


class DoctorConfig(Section):
    enabled: bool = False

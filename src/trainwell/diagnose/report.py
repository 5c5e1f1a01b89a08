"""Findings and the doctor's report: ``doctor.json`` and the terminal summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]
_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}
_MARK = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL"}


def json_safe(obj: Any) -> Any:
    """JSON-safe copy: tensors and arrays to lists, non-finite floats to strings."""
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().tolist()
    elif hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class Finding:
    """One result of one check.

    Attributes:
        check: dotted name of the check that produced it, e.g. ``"init.dead_relu"``.
        status: ``"pass"``, ``"warn"`` or ``"fail"``.
        title: one line in plain words.
        detail: the numbers behind the verdict, in a sentence or two.
        evidence: the raw numbers (JSON-serialisable).
        advice: what to change, following the lectures.
    """

    check: str
    status: Status
    title: str
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in _RANK:
            raise ValueError(f"Finding.status must be one of pass, warn, fail; got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "evidence": json_safe(self.evidence),
            "advice": list(self.advice),
        }


@dataclass
class DoctorReport:
    """Everything the doctor found, in the lectures' order of checks."""

    findings: list[Finding] = field(default_factory=list)
    activation_stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        """The worst status of all findings (``"pass"`` when there are none)."""
        worst = max((_RANK[f.status] for f in self.findings), default=0)
        return next(s for s, r in _RANK.items() if r == worst)

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    @property
    def exit_code(self) -> int:
        """1 when a check failed, else 0 (for CI gates)."""
        return 0 if self.ok else 1

    def by_status(self, status: Status) -> list[Finding]:
        return [f for f in self.findings if f.status == status]

    def get(self, check: str) -> list[Finding]:
        """The findings of one check (exact name) or of a group (``"init"``)."""
        return [f for f in self.findings if f.check == check or f.check.startswith(check + ".")]

    def diagnosis(self) -> list[Finding]:
        """The findings at the worst status present (empty when everything passed)."""
        if self.status == "pass":
            return []
        return self.by_status(self.status)

    @property
    def suggested_lr(self) -> float | None:
        return self.info.get("suggested_lr")

    def to_json(self) -> dict[str, Any]:
        """The ``doctor.json`` object of the run-directory contract."""
        return {
            "findings": [f.to_dict() for f in self.findings],
            "activation_stats": json_safe(self.activation_stats),
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``doctor.json`` into ``folder`` (atomically) and return its path."""
        from trainwell.runs import write_json_atomic

        return write_json_atomic(Path(folder) / "doctor.json", self.to_json())

    def summary(self, verbose: bool = False) -> str:
        """A readable summary: one line per finding, then detail and advice for the others."""
        counts = {s: len(self.by_status(s)) for s in _RANK}
        lines = [
            f"doctor: {counts['fail']} failed, {counts['warn']} warnings, {counts['pass']} passed"
        ]
        for f in self.findings:
            lines.append(f"  [{_MARK[f.status]}] {f.check}: {f.title}")
            if f.status != "pass" or verbose:
                if f.detail:
                    lines.append(f"         {f.detail}")
                for tip in f.advice:
                    lines.append(f"         -> {tip}")
        if self.suggested_lr is not None:
            lines.append(f"suggested lr: {self.suggested_lr:.3g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

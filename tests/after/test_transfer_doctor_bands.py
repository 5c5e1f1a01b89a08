"""The doctor's transfer check and ``transfer = "auto"`` read the same two probe scores; where
``auto`` counts a source as similar (its probe is not below scratch's), the doctor must not call
it very different."""

from __future__ import annotations

import pytest
import torch

from trainwell.diagnose import transfer_check


@pytest.mark.parametrize(
    ("pre", "scr", "status", "title", "very_different"),
    [
        (0.897, 0.890, "warn", "barely better than random", False),   # auto: similar
        (0.890, 0.890, "warn", "barely better than random", False),   # a tie: auto says similar
        (0.880, 0.890, "warn", "no better than random", True),        # auto: very different
        (0.850, 0.890, "warn", "negative transfer", False),
        (0.950, 0.890, "pass", "the pretrained features help", False),
    ],
)
def test_each_band_of_the_probe_scores(monkeypatch, pre, scr, status, title, very_different):
    def scores(models, X, y, *, seed=0, rows=300):
        return {"rows": 139, "folds": 5, "min_per_class": 27, "pretrained": pre, "scratch": scr}

    monkeypatch.setattr(transfer_check, "probe_scores", scores)
    model = torch.nn.Linear(2, 2)
    finding = transfer_check.check_transfer(model, model, torch.zeros(4, 2), torch.zeros(4))
    assert finding.status == status and title in finding.title, finding.title
    assert ("very different" in finding.detail) is very_different, finding.detail

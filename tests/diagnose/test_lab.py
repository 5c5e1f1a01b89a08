"""Lecture 001's activation-statistics experiment."""

from __future__ import annotations

import pytest

from trainwell.cli import main
from trainwell.diagnose.lab import init_stats


def test_tanh_001_matches_the_lecture():
    stats = init_stats(width=4096, depth=6, batch=16, setups=["tanh, std 0.01", "tanh, std 0.05"])
    stds = [round(s["std"], 2) for s in stats["tanh, std 0.01"]]
    assert stds == pytest.approx([0.49, 0.29, 0.18, 0.11, 0.07, 0.05], abs=0.015)
    assert min(s["std"] for s in stats["tanh, std 0.05"]) > 0.8  # "all activations saturate"


def test_xavier_relu_collapses_and_kaiming_holds():
    stats = init_stats(width=512, depth=6, batch=32)
    relu_xavier = [s["std"] for s in stats["relu, Xavier 1/sqrt(Din)"]]
    kaiming = [s["std"] for s in stats["relu, Kaiming sqrt(2/Din)"]]
    assert relu_xavier[-1] < 0.25 * relu_xavier[0]  # halves in variance per layer
    assert 0.7 < kaiming[-1] / kaiming[0] < 1.4


def test_cli_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert (
        main(
            [
                "lab",
                "init-stats",
                "--width",
                "64",
                "--depth",
                "3",
                "--batch",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "tanh, std 0.01" in text and "layer 3" in text and out.stat().st_size > 5000
    assert main(["lab", "init-stats", "--width", "0"]) == 2


def test_unknown_setup_is_refused():
    with pytest.raises(ValueError, match="did you mean 'tanh, std 0.01'"):
        init_stats(width=8, depth=1, setups=["tanh, std 0.1"])

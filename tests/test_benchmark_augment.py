"""``benchmarks/augment.py --quick``: the script runs end to end, so that it cannot rot."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "augment.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_augment", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hand_written_operations_do_what_they_say():
    bench = _load()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28) + 1.0  # no zeros of its own: the cutout's are the only ones
    y = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float()
    xm, ym = bench.mixup(x, y, g)
    assert torch.allclose(ym.sum(1), torch.ones(6))  # convex combinations of one-hot rows
    img = bench.one_image_augment(x[0])
    assert img.shape == (1, 28, 28) and (img == 0).any()  # the cutout square at least
    out, soft = bench.hand_augment(x, y, g)
    assert out.shape == x.shape and soft.shape == y.shape and torch.isfinite(out).all()


@pytest.mark.slow
def test_quick_mode_prints_both_tables(capsys):
    bench = _load()
    out = bench.main(["--quick", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "Speed:" in printed and "28x28 MNIST sample" in printed and "8x8 digits" in printed
    names = [r["pipeline"] for r in out["speed"]]
    assert names[:3] == ["trainwell", "(a) hand-written batch loop",
                         "(b) per-sample Dataset/DataLoader"] and names[3] == "(c) kornia"
    for row in out["speed"][:3]:
        assert row["images_per_s"] > 0 and 0 < row["augment_share"] < 1
        assert math.isfinite(row["time_vs_trainwell"])
    assert out["speed"][0]["time_vs_trainwell"] == 1.0
    assert set(out["mnist"]) == {"no augmentation", "augmentation", "augmentation + TTA",
                                 "augmentation + MC dropout", "augmentation + TTA + MC dropout"}
    assert all(0.0 <= a <= 1.0 for accs in out["mnist"].values() for a in accs)
    digits = out["digits"]  # nothing geometric trained: trainwell's TTA is the plain prediction
    assert digits["trainwell TTA (identity only)"] == digits["no augmentation"]

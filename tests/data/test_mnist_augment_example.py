"""The shipped example of augmentation on the 28x28 set trains end to end, with its grid and
its test metrics with and without test-time averaging."""

from __future__ import annotations

from importlib.resources import as_file, files

import pytest

import trainwell
from trainwell.config import load_config


@pytest.mark.slow
def test_the_mnist_augment_example_trains_with_grid_and_tta(runs_dir):
    with as_file(files("trainwell") / "examples" / "mnist_augment.toml") as path:
        cfg = load_config(path, ["train.epochs=1", "data.params.train_per_class=3",
                                 "tta.mc_samples=2", "train.threads=1"])
    assert sorted(cfg.augment.model_dump(exclude_none=True)) == ["affine", "crop", "cutout"]
    run = trainwell.fit(cfg, quiet=True)
    results = run.results
    assert results["tta"]["mc_samples"] == 2
    for key in ("test", "test_tta", "test_mc"):
        assert 0.0 <= results[key]["test_accuracy"] <= 1.0
    assert run.prepared.input_shape == (1, 28, 28) and len(run.prepared.test.y) == 2500
    assert (run.run_dir / "augment_grid.png").stat().st_size > 1000
    assert "What the model is fed" in (run.run_dir / "report.html").read_text()

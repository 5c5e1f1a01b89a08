"""``trainwell data describe``: what the model is fed, and the image grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from trainwell.cli import main
from trainwell.data.cli import default_grid_path


def test_describe_table_shows_task_balance_missing_and_stats(tmp_path, monkeypatch, capsys):
    from .conftest import mixed_frame

    mixed_frame(60).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "exp.toml").write_text(
        '[data]\nsource = "csv:m.csv"\ntarget = "label"\npreprocess = ["impute", "standardize"]\n')
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "exp.toml", "--set", "data.split.test=0.2"]) == 0
    out = capsys.readouterr().out
    assert "task: multiclass, 3 classes: 0='cat', 1='dog', 2='eel'" in out
    assert "model input: shape (8,) per sample, n_outputs 3" in out
    assert "splits: train 39, val 9, test 12 (stratified, val=0.15, test=0.2, seed 0)" in out
    assert "age: 2 (train" in out
    assert "imputed with the training mean, indicator column 'missing_age'" in out
    assert "city: 1 (train" in out and "most frequent" in out
    assert ("preprocessing (fitted on train only): impute(strategy=mean, indicator=True) -> onehot "
            "-> standardize") in out
    row = next(line for line in out.splitlines() if line.strip().startswith("income"))
    assert float(row.split()[1]) > 1000  # raw scale before
    after = [line for line in out.splitlines() if line.strip().startswith("income")][1].split()
    assert abs(float(after[1])) < 1e-6 and abs(float(after[2]) - 1) < 1e-6  # train mean 0, std 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml", "m.csv"]  # tables: no PNG


def test_describe_images_writes_a_grid_png(tmp_path, monkeypatch, capsys):
    (tmp_path / "dig.toml").write_text('[data]\nsource = "builtin:digits_images"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "dig.toml"]) == 0
    out = capsys.readouterr().out
    assert "model input: shape (1, 8, 8)" in out and "channel 0" in out
    assert default_grid_path("dig.toml") == "dig-batch.png"
    with Image.open(tmp_path / "dig-batch.png") as img:
        assert img.width > 200 and np.asarray(img).std() > 10  # real pixels, not blank
    assert main(["data", "describe", "dig.toml", "--grid", "sub/g.png"]) == 0
    assert (tmp_path / "sub" / "g.png").is_file()
    assert main(["data", "describe", "dig.toml", "--no-grid", "--grid", "x.png"]) == 0
    assert not (tmp_path / "x.png").exists()


def test_describe_regression_and_dropped_rows(tmp_path, monkeypatch, capsys):
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [0.5, None, 2.5, 3.5] * 10})
    frame.to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "r.toml").write_text(
        '[data]\nsource = "csv:r.csv"\ntarget = "y"\nmissing_target = "drop"\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "r.toml"]) == 0
    out = capsys.readouterr().out
    assert "task: regression, 1 target(s)" in out
    assert "dropped rows: 10 with a missing target (rows [1, 5, 9" in out


def test_describe_lazy_image_folder_and_its_grid(tmp_path, monkeypatch, capsys):
    from .conftest import write_image_folder

    write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=10)
    (tmp_path / "p.toml").write_text('[data]\nsource = "images:pets"\n'
                                     'images = { mode = "L", size = [6, 6], memory_mb = 0.0001 }\n')
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "p.toml"]) == 0
    out = capsys.readouterr().out
    assert "model input: shape (1, 6, 6) per sample (read lazily from disk), n_outputs 1" in out
    assert "pixels before preprocessing, per channel (train, 1 channels):" in out
    after = next(line for line in out.splitlines() if line.strip().startswith("channel 0")
                 and len(line.split()) == 8).split()
    assert after[2] == "0" and float(after[3]) == 1.0  # channel_mean_std: train mean 0, std 1
    with Image.open(tmp_path / "p-batch.png") as img:
        assert img.width > 200 and np.asarray(img).std() > 10


def test_grid_shows_a_shuffled_batch_not_the_first_class(tmp_path, monkeypatch):
    import matplotlib.axes

    from trainwell.data import prepare
    from trainwell.data.config import DataConfig
    from trainwell.data.summary import image_grid_png

    from .conftest import write_image_folder

    root = write_image_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=12)
    data = prepare(DataConfig(source=f"images:{root}"), seed=0)
    first = [data.classes[int(i)] for i in data.train.y[:6]]
    assert set(first) == {"a"}  # in file order the first inputs are all of one class
    seen = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda self, t, *a, **k: seen.append(t) or real(self, t, *a, **k))
    png = image_grid_png(data, n=6, seed=0)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(seen) == 6
    assert len(set(seen)) >= 2  # a shuffled batch, as a loader would give it

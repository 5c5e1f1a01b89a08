"""Splits: stratified and seeded; a split column; index files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trainwell.data import prepare
from trainwell.data.config import DataConfig
from trainwell.data.split import split_by_fraction
from trainwell.errors import DataError


def test_fraction_split_is_a_seeded_stratified_partition():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    a = split_by_fraction(100, y, 0.2, 0.1, True, seed=5)
    b = split_by_fraction(100, y, 0.2, 0.1, True, seed=5)
    c = split_by_fraction(100, y, 0.2, 0.1, True, seed=6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(100))
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 20, 10]
    assert np.bincount(y[a["val"]]).tolist() == [12, 6, 2]  # class proportions kept
    assert np.bincount(y[a["test"]]).tolist() == [6, 3, 1]


def test_no_val_split_and_regression_split():
    s = split_by_fraction(40, None, 0.0, 0.25, True, seed=0)
    assert len(s["val"]) == 0 and len(s["test"]) == 10 and len(s["train"]) == 30


def test_split_column(tmp_path):
    path = tmp_path / "s.csv"
    part = ["train"] * 6 + ["Validation"] * 2 + ["test"] * 2
    pd.DataFrame({"x": np.arange(10.0), "y": [0, 1] * 5, "part": part}).to_csv(path, index=False)
    data = prepare(DataConfig(source=f"csv:{path}", target="y", split={"column": "part"}), 0)
    assert data.train.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.val.index.tolist() == [6, 7] and data.test.index.tolist() == [8, 9]
    assert data.feature_names == ["x"]  # the split column is not a feature


def test_index_files_json_and_per_split(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"x": np.arange(10.0), "y": [0, 1] * 5}).to_csv(path, index=False)
    (tmp_path / "idx.json").write_text(json.dumps({"train": [0, 1, 2, 3, 4, 9], "test": [5, 6]}))
    data = prepare(DataConfig(source=f"csv:{path}", target="y",
                              split={"indices": str(tmp_path / "idx.json")}), 0)
    assert data.train.index.tolist() == [0, 1, 2, 3, 4, 9] and len(data.val) == 0
    (tmp_path / "tr.txt").write_text("0\n1\n2\n3\n")
    np.save(tmp_path / "va.npy", np.array([4, 5]))
    data = prepare(DataConfig(source=f"csv:{path}", target="y", split={"indices": {
        "train": str(tmp_path / "tr.txt"), "val": str(tmp_path / "va.npy")}}), 0)
    assert data.train.index.tolist() == [0, 1, 2, 3] and data.val.index.tolist() == [4, 5]


@pytest.mark.parametrize("content,match", [
    ({"train": [0, 1], "test": [1]}, "row 1 is in both train and test"),
    ({"train": [0, 99]}, "row 99, outside \\[0, 9\\]"),
    ({"train": [0, "x"]}, "hold 'x'"),
    ({"val": [0]}, "keys train"),
])
def test_bad_index_files(tmp_path, content, match):
    path = tmp_path / "s.csv"
    pd.DataFrame({"x": np.arange(10.0), "y": [0, 1] * 5}).to_csv(path, index=False)
    (tmp_path / "idx.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=match):
        prepare(DataConfig(source=f"csv:{path}", target="y",
                           split={"indices": str(tmp_path / "idx.json")}), 0)


def test_bad_split_column_value(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [0, 1, 0, 1], "part": ["train", "train", "tst", "test"]}
                 ).to_csv(path, index=False)
    with pytest.raises(DataError, match="split column 'part'.*holds 'tst' at row 2; allowed"):
        prepare(DataConfig(source=f"csv:{path}", target="y", split={"column": "part"}), 0)


def test_index_files_and_split_column_with_dropped_target_rows(tmp_path):
    path = tmp_path / "s.csv"
    y = [0, 1, None, 1, 0, 1, 0, None, 0, 1]
    part = ["train"] * 6 + ["val", "val", "test", "test"]
    pd.DataFrame({"x": np.arange(10.0), "y": y, "part": part}).to_csv(path, index=False)
    by_col = prepare(DataConfig(source=f"csv:{path}", target="y", missing_target="drop",
                                split={"column": "part"}), 0)
    assert by_col.train.index.tolist() == [0, 1, 3, 4, 5] and by_col.val.index.tolist() == [6]
    assert by_col.test.index.tolist() == [8, 9]
    (tmp_path / "idx.json").write_text(json.dumps({"train": [0, 1, 2, 3, 4], "val": [7, 8],
                                                   "test": [9]}))
    by_idx = prepare(DataConfig(source=f"csv:{path}", target="y", missing_target="drop",
                                split={"indices": str(tmp_path / "idx.json")}, preprocess=[],
                                columns={"part": "ignore"}), 0)
    # source rows 2 and 7 have no target: skipped; the rest keep their source row numbers
    assert by_idx.train.index.tolist() == [0, 1, 3, 4] and by_idx.val.index.tolist() == [8]
    assert by_idx.train.X.numpy().ravel().tolist() == [0.0, 1.0, 3.0, 4.0]  # x = row number
    assert by_idx.train.y.tolist() == [0, 1, 1, 0]


def test_index_files_relative_to_the_config_from_the_cli(tmp_path, monkeypatch, capsys):
    from trainwell.cli import main

    exp = tmp_path / "exp"
    (exp / "splits").mkdir(parents=True)
    pd.DataFrame({"x": np.arange(12.0), "y": [0, 1] * 6}).to_csv(exp / "t.csv", index=False)
    (exp / "splits" / "train.txt").write_text("0 1 2 3 4 5 6 7")
    (exp / "splits" / "test.txt").write_text("8,9,10,11")
    (exp / "c.toml").write_text('[data]\nsource = "csv:t.csv"\ntarget = "y"\n'
                                '[data.split.indices]\ntrain = "splits/train.txt"\n'
                                'test = "splits/test.txt"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["data", "describe", "exp/c.toml"]) == 0
    assert "splits: train 8, val 0, test 4 (from index files)" in capsys.readouterr().out

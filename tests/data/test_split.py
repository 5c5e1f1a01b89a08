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

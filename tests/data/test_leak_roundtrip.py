"""No val/test statistic reaches the fitted preprocessing; save/load reproduces it exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from trainwell.data import load_inference, prepare
from trainwell.data.config import DataConfig
from trainwell.data.pipeline import Pipeline
from trainwell.runs import read_safetensors

from .conftest import mixed_frame, write_image_folder

STEPS = [{"name": "impute", "strategy": "median"}, "onehot", "standardize",
         {"name": "pca", "components": 5}]


def _state(data):
    doc, arrays = data.pipeline.state()
    return json.dumps(doc, sort_keys=True), arrays


def test_no_val_or_test_statistic_leaks_into_the_fitted_preprocessing(tmp_path):
    frame = mixed_frame(80)
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    cfg = DataConfig(source=f"csv:{path}", target="label", preprocess=STEPS)
    first = prepare(cfg, seed=0)
    train = set(first.train.index.tolist())
    others = [i for i in range(len(frame)) if i not in train]
    # wreck every val/test feature: huge numbers, new categories, new missing values
    wrecked = frame.copy()
    wrecked.loc[others, "age"] = 1e6
    wrecked.loc[others[:3], "income"] = np.nan
    wrecked.loc[others, "city"] = "atlantis"
    wrecked.loc[others, "member"] = "yes"
    wrecked.to_csv(path, index=False)
    second = prepare(cfg, seed=0)
    assert np.array_equal(second.train.index, first.train.index)  # the split ignores X
    doc1, arr1 = _state(first)
    doc2, arr2 = _state(second)
    assert doc1 == doc2 and arr1.keys() == arr2.keys()
    for k in arr1:
        np.testing.assert_array_equal(arr1[k], arr2[k], err_msg=k)
    assert torch.equal(first.train.X, second.train.X)
    # and the fitted numbers are the training rows' own (scikit-learn oracle on train only)
    rows = sorted(train)
    num = frame.loc[rows, ["age", "income"]].to_numpy()
    np.testing.assert_allclose(arr1["0.impute.statistics"][:2],
                               SimpleImputer(strategy="median").fit(num).statistics_)
    cats = json.loads(doc1)["steps"][1]["state"]["categories"]
    assert "atlantis" not in cats[0]


def test_no_leak_for_image_statistics():
    cfg = DataConfig(source="builtin:digits_images", preprocess=["mean_image", "channel_mean_std"])
    data = prepare(cfg, seed=0)
    raw = prepare(DataConfig(source="builtin:digits_images", preprocess=[]), seed=0)
    mean = raw.train.X.numpy().mean(0)
    np.testing.assert_allclose(data.pipeline.steps[0].shift_, mean, rtol=1e-6, atol=1e-7)
    centred = raw.train.X.numpy() - mean
    sc = StandardScaler().fit(centred.transpose(0, 2, 3, 1).reshape(-1, 1))
    np.testing.assert_allclose(data.pipeline.steps[1].div_.ravel(), sc.scale_, rtol=1e-5)
    full = raw.train.X.numpy().tolist() + raw.val.X.numpy().tolist()
    assert not np.allclose(np.mean(full, 0), mean)  # the val rows would have changed it


def test_csv_round_trip_is_exact_and_target_optional(tmp_path):
    frame = mixed_frame(70)
    frame.insert(0, "rid", [f"r{i}" for i in range(70)])
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    cfg = DataConfig(source=f"csv:{path}", target="label", id_column="rid", preprocess=STEPS)
    data = prepare(cfg, seed=1)
    run = tmp_path / "run"
    data.save(run)
    assert sorted(p.name for p in run.iterdir()) == ["data.json", "preprocess.json",
                                                     "preprocess.safetensors"]
    saved = json.loads((run / "data.json").read_text())
    assert saved["classes"] == ["cat", "dog", "eel"] and saved["input_shape"] == [5]
    sizes = {"train": len(data.train), "val": len(data.val), "test": len(data.test)}
    assert saved["splits"] == sizes
    assert set(read_safetensors(run / "preprocess.safetensors")) >= {"3.pca.components"}
    inp = load_inference(run)
    assert inp.classes == data.classes and inp.task == "multiclass"
    frame.drop(columns=["label"]).to_csv(tmp_path / "new.csv", index=False)
    X, ids = inp.load(tmp_path / "new.csv")
    for split in data.splits.values():
        assert torch.equal(X[split.index], split.X)  # bit for bit
    assert ids[:2] == ["r0", "r1"]
    frame.to_parquet(tmp_path / "new.parquet")
    Xp, _ = inp.load(f"parquet:{tmp_path / 'new.parquet'}")
    assert torch.equal(Xp, X)
    assert torch.equal(inp(frame), X)  # callable on a DataFrame too
    reloaded = Pipeline.load(run)
    assert reloaded.state()[0] == data.pipeline.state()[0]


def test_image_folder_and_npz_round_trips(tmp_path):
    root = write_image_folder(tmp_path / "imgs", classes=("x", "y", "z"), per_class=5)
    data = prepare(DataConfig(source=f"images:{root}", images={"size": [4, 4]},
                              preprocess=["mean_image", "channel_mean_std"]), seed=0)
    data.save(tmp_path / "run")
    X, ids = load_inference(tmp_path / "run").load(root)
    assert ids[0] == "x/00.png" and X.shape == (15, 3, 4, 4)
    for split in data.splits.values():
        assert torch.equal(X[split.index], split.X)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.normal(size=(40, 3)), y=rng.choice([0, 1], 40),
             ids=np.arange(100, 140))
    t = prepare(DataConfig(source=f"npz:{tmp_path / 't.npz'}", preprocess=["whiten"]), seed=0)
    t.save(tmp_path / "run2")
    np.savez(tmp_path / "new.npz", X=np.load(tmp_path / "t.npz")["X"])  # no y, no ids
    Xn, ids = load_inference(tmp_path / "run2").load(tmp_path / "new.npz")
    assert torch.equal(Xn[t.test.index], t.test.X) and ids == list(range(40))


@pytest.mark.parametrize("labels,classes", [
    ([3, 7, 7, 3] * 10, [3, 7]),
    ([True, False] * 20, [False, True]),
    ([0.5, 1.5, 2.5, 0.5] * 10, [0.5, 1.5, 2.5]),
    (["b", "a", "c", "a"] * 10, ["a", "b", "c"]),
])
def test_label_mapping_of_any_type_is_saved_with_the_run(tmp_path, labels, classes):
    path = tmp_path / "l.csv"
    pd.DataFrame({"x": np.arange(40.0), "y": labels}).to_csv(path, index=False)
    task = "multiclass" if len(classes) > 2 else "auto"  # 0.5 / 1.5 / 2.5 would be regression
    data = prepare(DataConfig(source=f"csv:{path}", target="y", task=task), 0)
    assert data.classes == classes
    data.save(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "data.json").read_text())
    assert saved["classes"] == classes
    assert [type(c) for c in saved["classes"]] == [type(c) for c in classes]
    assert load_inference(tmp_path / "run").classes == classes
    for split in data.splits.values():  # index i means saved["classes"][i] for every row
        back = [saved["classes"][i] for i in split.y.tolist()]
        assert back == [labels[r] for r in split.index]

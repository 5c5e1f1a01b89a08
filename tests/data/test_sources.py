"""Every source, on files the tests write: types, task inference, label mapping."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_iris

from trainwell.data import prepare
from trainwell.data.builtin import BUILTINS
from trainwell.data.config import DataConfig
from trainwell.data.sources import SOURCES, read_source, source_from_path
from trainwell.data.tables import infer_type
from trainwell.errors import DataError

EXPECTED = {  # name -> (task, input_shape, n_outputs)
    "digits": ("multiclass", (64,), 10),
    "digits_images": ("multiclass", (1, 8, 8), 10),
    "mnist_sample": ("multiclass", (1, 28, 28), 10),
    "iris": ("multiclass", (4,), 3),
    "wine": ("multiclass", (13,), 3),
    "breast_cancer": ("binary", (30,), 1),
    "diabetes": ("regression", (10,), 1),
    "moons": ("binary", (2,), 1),
    "circles": ("binary", (2,), 1),
    "blobs": ("multiclass", (2,), 3),
    "classification": ("binary", (20,), 1),
    "rotated_moons": ("binary", (2,), 1),
    "multitask": ("regression", (10,), 2),  # several target columns: regression until [heads]
}


@pytest.mark.parametrize("name", BUILTINS.names())
def test_every_builtin_loads_with_its_task_and_shapes(name):
    data = prepare(DataConfig(source=f"builtin:{name}", params={}), seed=0)
    assert (data.task, data.input_shape, data.n_outputs) == EXPECTED[name]
    n = len(data.train) + len(data.val) + len(data.test)
    assert data.train.X.shape == (len(data.train), *data.input_shape)
    assert data.train.X.dtype == torch.float32
    if data.task == "regression":
        assert data.train.y.dtype == torch.float32
        assert data.train.y.shape == (len(data.train), data.n_outputs)
    else:
        assert data.train.y.dtype == torch.int64
        assert n == sum(sum(c) for c in data.class_counts().values())


def test_builtin_matches_sklearn_and_digits_images_are_the_digits_scaled():
    iris = load_iris()
    data = prepare(DataConfig(source="builtin:iris", preprocess=[]), seed=0)
    assert data.feature_names == list(iris.feature_names)
    np.testing.assert_array_equal(data.train.X.numpy(),
                                  iris.data[data.train.index].astype(np.float32))
    flat = prepare(DataConfig(source="builtin:digits", preprocess=[]), seed=3)
    img = prepare(DataConfig(source="builtin:digits_images", preprocess=[]), seed=3)
    np.testing.assert_array_equal(flat.train.index, img.train.index)
    np.testing.assert_allclose(img.train.X.reshape(len(img.train), 64).numpy(),
                               flat.train.X.numpy() / 16.0, rtol=1e-6)


def test_generator_params_and_seed():
    cfg = DataConfig(source="builtin:blobs",
                     params={"n_samples": 90, "centers": 4, "n_features": 5})
    a, b = prepare(cfg, seed=1), prepare(cfg, seed=1)
    assert a.input_shape == (5,) and a.n_outputs == 4
    assert len(a.train) + len(a.val) + len(a.test) == 90
    assert torch.equal(a.train.X, b.train.X)
    c = prepare(cfg, seed=2)
    assert not torch.equal(a.train.X, c.train.X)
    cls = prepare(DataConfig(source="builtin:classification",
                             params={"n_samples": 120, "n_classes": 3, "n_informative": 4}), 0)
    assert cls.task == "multiclass" and cls.n_outputs == 3


def test_csv_infers_column_types_onehots_and_maps_text_labels(mixed_csv):
    cfg = DataConfig(source=f"csv:{mixed_csv}", target="label",
                     preprocess=["impute", "standardize"])
    data = prepare(cfg, seed=0)
    assert data.info["feature_types"] == {"age": "numeric", "income": "numeric",
                                          "member": "boolean", "city": "categorical"}
    assert data.task == "multiclass" and data.classes == ["cat", "dog", "eel"]
    assert data.feature_names == ["age", "income", "member", "missing_age", "missing_city",
                                  "city=oslo", "city=paris", "city=rome"]
    frame = pd.read_csv(mixed_csv)
    y = np.array([data.classes.index(v) for v in frame["label"]])
    np.testing.assert_array_equal(data.train.y.numpy(), y[data.train.index])


def test_csv_column_overrides_and_ignore(tmp_path):
    path = tmp_path / "z.csv"
    pd.DataFrame({"zip": [75001, 75002, 75001, 75003] * 5, "id": range(20), "x": np.arange(20.0),
                  "y": [0.5 * i for i in range(20)]}).to_csv(path, index=False)
    cfg = DataConfig(source=f"csv:{path}", target="y",
                     columns={"zip": "categorical", "id": "ignore"}, preprocess=["onehot"],
                     split={"val": 0.0, "test": 0.2})
    data = prepare(cfg, seed=0)
    assert data.task == "regression"  # fractional numbers
    assert data.feature_names == ["x", "zip=75001", "zip=75002", "zip=75003"]


def test_an_identifier_column_taken_as_categorical_is_warned_about(tmp_path, caplog):
    path = tmp_path / "ids.csv"
    pd.DataFrame({"customer": [f"c{i:03d}" for i in range(40)], "x": np.arange(40.0),
                  "y": [0, 1] * 20}).to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="trainwell.data.preparation"):
        prepare(DataConfig(source=f"csv:{path}", target="y"), 0)
    assert "'customer'" in caplog.text and "40 distinct values in 40 rows" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainwell.data.preparation"):
        data = prepare(DataConfig(source=f"csv:{path}", target="y", id_column="customer"), 0)
    assert caplog.text == "" and data.feature_names == ["x"]


def test_parquet_source_with_booleans_and_integer_labels(tmp_path):
    path = tmp_path / "t.parquet"
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=40), "flag": rng.random(40) > 0.5,
                  "kind": pd.Categorical(rng.choice(["u", "v"], 40)),
                  "target": rng.choice([3, 7], 40)}).to_parquet(path)
    data = prepare(DataConfig(source=f"parquet:{path}"), seed=0)  # target found by name
    assert data.info["feature_types"] == {"a": "numeric", "flag": "boolean", "kind": "categorical"}
    assert data.task == "binary" and data.classes == [3, 7] and data.n_outputs == 1


def test_npz_tables_images_and_multi_target_regression(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.normal(size=(30, 3)), y=rng.choice(["lo", "hi"], 30))
    t = prepare(DataConfig(source=f"npz:{tmp_path / 't.npz'}"), seed=0)
    assert t.classes == ["hi", "lo"] and t.input_shape == (3,)
    np.savez(tmp_path / "i.npz", X=rng.random((40, 5, 4)), y=np.arange(40) % 4)
    i = prepare(DataConfig(source=f"npz:{tmp_path / 'i.npz'}"), seed=0)
    assert i.input_shape == (1, 5, 4) and i.n_outputs == 4
    np.savez(tmp_path / "r.npz", X=rng.normal(size=(30, 2)), y=rng.normal(size=(30, 2)))
    r = prepare(DataConfig(source=f"npz:{tmp_path / 'r.npz'}"), seed=0)
    assert r.task == "regression" and r.n_outputs == 2 and r.train.y.shape[1] == 2


def test_image_folder_in_memory_mode_size_and_labels(image_folder):
    cfg = DataConfig(source=f"images:{image_folder}", images={"mode": "L", "size": [4, 3]},
                     preprocess=[], split={"val": 0.0, "test": 0.25})
    data = prepare(cfg, seed=0)
    assert data.input_shape == (1, 4, 3) and data.classes == ["a", "b"] and data.task == "binary"
    assert not data.train.lazy
    x = data.train.X.numpy()
    assert x.min() >= 0.0 and x.max() <= 1.0
    rgb = prepare(DataConfig(source=f"images:{image_folder}", preprocess=[]), seed=0)
    assert rgb.input_shape == (3, 6, 5)  # first image's size, RGB by default


def test_image_folder_loaded_lazily_over_the_memory_budget(image_folder):
    base = dict(source=f"images:{image_folder}", split={"val": 0.25, "test": 0.25})
    eager = prepare(DataConfig(**base), seed=0)
    lazy = prepare(DataConfig(**base, images={"memory_mb": 1e-4}), seed=0)
    assert lazy.train.lazy and not eager.train.lazy
    assert isinstance(lazy.train.X, torch.utils.data.Dataset)
    x0, y0 = lazy.train.X[0]
    assert x0.shape == (3, 6, 5) and y0 == eager.train.y[0]
    stacked = torch.stack([lazy.val.X[i][0] for i in range(len(lazy.val))])
    torch.testing.assert_close(stacked, eager.val.X)  # same statistics, streamed fit
    batch = next(iter(torch.utils.data.DataLoader(lazy.train.dataset(), batch_size=4)))
    assert batch[0].shape == (4, 3, 6, 5)


def test_lazy_images_are_read_from_disk_when_asked(image_folder, monkeypatch):
    """Over the budget nothing is held in memory: an item is decoded when it is asked for."""
    from PIL import Image

    from trainwell.data import images as im

    calls = []
    real = im.read_many
    monkeypatch.setattr(im, "read_many",
                        lambda paths, *a, **k: calls.append(len(paths)) or real(paths, *a, **k))
    cfg = DataConfig(source=f"images:{image_folder}", images={"memory_mb": 1e-4},
                     preprocess=["channel_mean"], split={"val": 0.25, "test": 0.25})
    lazy = prepare(cfg, seed=0)
    assert lazy.train.lazy and lazy.info["lazy"]
    assert max(calls) <= len(lazy.train)  # never the whole folder at once (eager reads all 12)
    path = lazy.val.X.paths[0]
    before, _ = lazy.val.X[0]
    Image.fromarray(np.full((6, 5, 3), 255, dtype=np.uint8)).save(path)  # change the file on disk
    after, _ = lazy.val.X[0]
    shift = lazy.pipeline.steps[0].shift_.astype(np.float32)
    np.testing.assert_allclose(after.numpy(), 1.0 - shift + np.zeros((3, 6, 5)), rtol=1e-6)
    assert not torch.equal(before, after)
    calls.clear()
    eager = prepare(DataConfig(**{**cfg.model_dump(), "images": {"memory_mb": 100.0}}), 0)
    assert not eager.train.lazy and calls == [12]


@pytest.mark.parametrize("values,expected", [
    (pd.Series([1.5, 2.0]), "numeric"), (pd.Series([True, False]), "boolean"),
    (pd.Series(["Yes", "no", None]), "boolean"), (pd.Series(["a", "b"]), "categorical"),
])
def test_infer_type(values, expected):
    assert infer_type(values) == expected


def test_boolean_columns_become_0_1_with_missing_kept(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("yn,tf,TF,x,y\n" + "\n".join(
        f"{a},{b},{c},{i},{i % 2}" for i, (a, b, c) in enumerate(
            [("yes", "t", "True"), ("No", "F", "False"), ("", "T", ""), ("Y", "f", "TRUE"),
             ("n", "t", "FALSE"), ("YES", "f", "True")] * 4)) + "\n")
    cfg = DataConfig(source=f"csv:{path}", target="y", preprocess=["impute"],
                     split={"val": 0.0, "test": 0.0})
    data = prepare(cfg, seed=0)
    assert data.info["feature_types"] == {"yn": "boolean", "tf": "boolean", "TF": "boolean",
                                          "x": "numeric"}
    X = data.train.X.numpy()
    names = data.feature_names
    yn, tf = X[:, names.index("yn")], X[:, names.index("tf")]
    missing_yn = X[:, names.index("missing_yn")]
    order = np.argsort(data.train.index)
    assert yn[order][[0, 1, 3, 4, 5]].tolist() == [1, 0, 1, 0, 1]  # yes, No, Y, n, YES
    assert tf[order][:6].tolist() == [1, 0, 1, 0, 1, 0]  # t, F, T, f, t, f
    assert missing_yn[order][:6].tolist() == [0, 0, 1, 0, 0, 0]
    assert yn[order][2] == pytest.approx(np.mean([1, 0, 1, 0, 1]))  # imputed with the train mean


def test_mostly_numeric_text_is_numeric_and_the_odd_value_is_named(tmp_path):
    path = tmp_path / "q.csv"
    xs = [str(i * 0.5) for i in range(30)]
    xs[17] = "?"
    pd.DataFrame({"x": xs, "y": [0, 1, None] + [0, 1] * 13 + [1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'x' of csv file .* is numeric but holds '\?' "
                                        r"\(row 17\); set data.columns.x = \"categorical\""):
        prepare(DataConfig(source=f"csv:{path}", target="y", missing_target="drop"), 0)
    data = prepare(DataConfig(source=f"csv:{path}", target="y", missing_target="drop",
                              columns={"x": "categorical"}, preprocess=[]), 0)
    assert data.info["feature_types"] == {"x": "categorical"}
    assert len(data.feature_names) > 10 and all(n.startswith("x=") for n in data.feature_names)


@pytest.mark.parametrize("labels,task,classes", [
    ([0, 1, 1, 0] * 10, "binary", [0, 1]),
    ([1, 2, 3, 4] * 10, "multiclass", [1, 2, 3, 4]),
    ([True, False] * 20, "binary", [False, True]),
    (list(np.linspace(0, 1, 40)), "regression", None),
    (list(range(40)), "regression", None),  # > 20 distinct whole numbers
    (list(range(21)) + [0] * 19, "regression", None),  # 21: one more than docs/data.md allows
    (list(range(20)) * 2, "multiclass", list(range(20))),  # 20 distinct: still classes
])
def test_task_inference_and_label_mapping(tmp_path, labels, task, classes):
    path = tmp_path / "l.csv"
    pd.DataFrame({"x": np.arange(40.0), "y": labels}).to_csv(path, index=False)
    data = prepare(DataConfig(source=f"csv:{path}", target="y", split={"stratify": False}), 0)
    assert data.task == task and data.classes == classes


def test_task_override(tmp_path):
    path = tmp_path / "o.csv"
    pd.DataFrame({"x": np.arange(40.0), "y": [0, 1, 2, 3] * 10}).to_csv(path, index=False)
    reg = prepare(DataConfig(source=f"csv:{path}", target="y", task="regression"), 0)
    assert reg.task == "regression" and reg.train.y.dtype == torch.float32
    multi = prepare(DataConfig(source="builtin:moons", task="multiclass"), 0)
    assert multi.task == "multiclass" and multi.n_outputs == 2


# ---------------------------------------------------------------------------- conformance


FRAME = pd.DataFrame({"x": np.arange(12.0), "y": [0, 1] * 6})


def _csv(tmp_path, stack=None):
    FRAME.to_csv(tmp_path / "e.csv", index=False)
    return tmp_path / "e.csv"


def _parquet(tmp_path, stack=None):
    FRAME.to_parquet(tmp_path / "e.parquet")
    return tmp_path / "e.parquet"


def _npz(tmp_path, stack=None):
    np.savez(tmp_path / "e.npz", X=FRAME[["x"]].to_numpy(), y=FRAME["y"].to_numpy())
    return tmp_path / "e.npz"


def _images(tmp_path, stack=None):
    from .conftest import write_image_folder

    return write_image_folder(tmp_path / "e", per_class=6)


def _memory(tmp_path, stack):
    from trainwell.data.memory import from_arrays

    data = from_arrays(FRAME[["x"]].to_numpy(), FRAME["y"].to_numpy())
    stack.enter_context(data.held())  # as fit(data=...) holds it while the run trains
    return data.fingerprint


# one example of each source kind (the part after ``KIND:``): a new kind is read here the day
# it is registered; ``stack`` holds what the example needs while it is read
SOURCE_EXAMPLES = {"builtin": lambda tmp_path, stack: "iris", "csv": _csv, "parquet": _parquet,
                   "npz": _npz, "images": _images, "memory": _memory}


def test_every_source_kind_has_an_example():
    assert sorted(SOURCE_EXAMPLES) == SOURCES.names()


@pytest.mark.parametrize("kind", SOURCES.names())
def test_source_kind_conformance(kind, tmp_path):
    with contextlib.ExitStack() as stack:
        what = str(SOURCE_EXAMPLES[kind](tmp_path, stack))
        raw = read_source(f"{kind}:{what}", {}, 0)
    rows = len(raw.frame) if hasattr(raw, "frame") else len(raw.paths)
    assert rows == (150 if kind == "builtin" else 12) and raw.origin
    if SOURCES.get(kind).path:  # a bare path of this kind is recognised by its suffix or folder
        assert source_from_path(what) == f"{kind}:{what}"


def test_data_task_is_auto_or_the_task_vocabulary():
    from typing import get_args

    from trainwell.tasks import TASKS

    assert get_args(DataConfig.model_fields["task"].annotation) == ("auto", *TASKS)

"""Data that used to change without a word: duplicate column names, 16-bit images, values
beyond float32, a target marked ignore, files skipped in an image folder, a decompression
bomb. Each is now refused by name, read as it is, or counted."""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.data.config import DataConfig
from trainwell.data.images import read_image
from trainwell.data.sources import RawImageFolder, read_source
from trainwell.data.tables import FLOAT32_MAX, encode, read_csv
from trainwell.errors import ConfigError, DataError

from .conftest import write_image_folder

# ---------------------------------------------------------------------------- duplicate columns


def test_a_csv_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("sepal_length,width,sepal_length,y,width\n1,2,3,0,4\n5,6,7,1,8\n")
    message = ("csv file .*dup.csv names a column twice: 'sepal_length' \\(columns 1, 3\\); "
               "'width' \\(columns 2, 5\\); give every column a unique name")
    with pytest.raises(DataError, match=message):
        read_csv(path)
    with pytest.raises(DataError, match="'sepal_length' \\(columns 1, 3\\)"):
        prepare(DataConfig(source=f"csv:{path}", target="y"), 0)


def test_names_that_only_look_alike_are_kept(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("x,x.1,X,y\n1,2,3,0\n")
    assert list(read_csv(path).columns) == ["x", "x.1", "X", "y"]


def test_a_parquet_file_naming_a_column_twice_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([0, 1])],
                            names=["a", "a", "y"]), path)
    with pytest.raises(DataError, match="parquet file .*dup.parquet names a column more than "
                       "once: \\['a'\\]; give every column a unique name"):
        read_source(f"parquet:{path}", {}, 0)


# ---------------------------------------------------------------------------- 16-bit images

GRAY16 = np.array([[0, 255, 1000, 30000], [40000, 50000, 65000, 65535]], dtype=np.uint16)


def test_a_16_bit_png_is_scaled_by_65535_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(GRAY16).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"
    x = read_image(path, "L", None)
    assert x.dtype == np.float32 and x.shape == (1, 2, 4)
    np.testing.assert_allclose(x[0], GRAY16 / 65535.0, rtol=1e-6)
    rgba = read_image(path, "RGBA", None)
    assert rgba.shape == (4, 2, 4)
    np.testing.assert_allclose(rgba[:3], np.broadcast_to(x, (3, 2, 4)))
    np.testing.assert_array_equal(rgba[3], 1.0)


def test_a_16_bit_image_resized_keeps_its_range(tmp_path):
    path = tmp_path / "deep.png"
    flat = np.full((6, 6), 30000, dtype=np.uint16)
    Image.fromarray(flat).save(path)
    x = read_image(path, "RGB", [3, 4])
    assert x.shape == (3, 3, 4)
    np.testing.assert_allclose(x, 30000 / 65535.0, rtol=1e-5)


def test_a_16_bit_pgm_read_in_mode_i_is_scaled_too(tmp_path):
    path = tmp_path / "deep.pgm"
    Image.fromarray(GRAY16).save(path)
    with Image.open(path) as img:
        assert img.mode == "I"
    np.testing.assert_allclose(read_image(path, "L", None)[0], GRAY16 / 65535.0, rtol=1e-6)


def test_float_pixels_outside_0_1_are_refused(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 2.5]], dtype=np.float32)).save(path)
    with pytest.raises(DataError, match="f.tif \\(mode F\\) has pixel values from 0 to 2.5, "
                       "outside 0..1"):
        read_image(path, "L", None)


def test_eight_bit_images_are_unchanged(tmp_path):
    path = tmp_path / "rgb.png"
    arr = np.arange(24, dtype=np.uint8).reshape(2, 4, 3) * 10
    Image.fromarray(arr).save(path)
    np.testing.assert_array_equal(read_image(path, "RGB", None),
                                  arr.transpose(2, 0, 1).astype(np.float32) / 255.0)


# ---------------------------------------------------------------------------- a huge header


def _png_header(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` over a few bytes of pixels."""

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [60000, 10000])  # over twice Pillow's limit; just over it
def test_a_png_claiming_a_huge_size_is_refused_before_decoding(tmp_path, side):
    path = _png_header(tmp_path / "bomb.png", side, side)
    claimed = "" if side == 60000 else " \\(10000x10000\\)"  # Pillow gives no size over 2x
    with pytest.raises(DataError, match=f"image .*bomb.png claims more than "
                       f"{Image.MAX_IMAGE_PIXELS:,} pixels{claimed}: a corrupt file or a "
                       "decompression bomb; it is not decoded"):
        read_image(path, "RGB", [8, 8])


def test_a_decompression_bomb_in_a_folder_through_the_command_line(tmp_path, monkeypatch,
                                                                     capsys):
    root = write_image_folder(tmp_path / "imgs")
    _png_header(root / "a" / "00.png", 60000, 60000)
    work = tmp_path / "work"
    work.mkdir()
    (work / "exp.toml").write_text(f'[data]\nsource = "images:{root.as_posix()}"\n')
    monkeypatch.chdir(work)
    assert main(["data", "describe", "exp.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: image ") and "a/00.png" in err, err
    assert "decompression bomb" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert os.listdir(work) == ["exp.toml"]


# ---------------------------------------------------------------------------- beyond float32


def _numeric_csv(tmp_path, value):
    path = tmp_path / "big.csv"
    x = np.linspace(0.0, 1.0, 20)
    x[3] = value
    pd.DataFrame({"x": x, "z": np.arange(20.0), "y": [0, 1] * 10}).to_csv(path, index=False)
    return path


def test_a_feature_beyond_float32_is_refused_with_its_column(tmp_path):
    path = _numeric_csv(tmp_path, 1e308)
    with pytest.raises(DataError, match="column 'x' of csv file .*big.csv holds 1e\\+308 \\(row 3"
                       "\\), beyond what float32 model inputs can hold \\(\\|x\\| <= 3.4e\\+38\\), "
                       "and its square \\(standardizing takes one\\) overflows; rescale"):
        prepare(DataConfig(source=f"csv:{path}", target="y"), 0)
    with pytest.raises(DataError, match="holds -1e\\+39 \\(row 3\\), beyond what float32 model "
                       "inputs can hold \\(\\|x\\| <= 3.4e\\+38\\); rescale"):
        prepare(DataConfig(source=f"csv:{_numeric_csv(tmp_path, -1e39)}", target="y"), 0)


def test_the_largest_float32_is_accepted_and_prediction_input_is_checked_alike():
    frame = pd.DataFrame({"x": [FLOAT32_MAX, -FLOAT32_MAX, 0.0]})
    assert np.isfinite(encode(frame, {"x": "numeric"}, "t").num.astype(np.float32)).all()
    with pytest.raises(DataError, match="column 'x' of new input holds 1e\\+300 \\(row 1\\)"):
        encode(pd.DataFrame({"x": [1.0, 1e300]}), {"x": "numeric"}, "new input")


def test_a_regression_target_beyond_float32_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    y = np.linspace(0.5, 9.5, 20)
    y[7] = 1e39
    pd.DataFrame({"x": np.arange(20.0), "y": y}).to_csv(path, index=False)
    with pytest.raises(DataError, match="target 'y' of csv file .*t.csv holds 1e\\+39 \\(row 7\\), "
                       "beyond what float32 targets can hold"):
        prepare(DataConfig(source=f"csv:{path}", target="y", task="regression"), 0)


@pytest.mark.parametrize("value", [np.inf, np.nan, 1e308])
def test_image_arrays_with_values_float32_cannot_hold_are_refused(tmp_path, value):
    X = np.zeros((4, 1, 2, 2))
    X[2, 0, 1, 0] = value
    np.savez(tmp_path / "im.npz", X=X, y=np.array([0, 1, 0, 1]))
    shown = re.escape(f"{value:g}")
    with pytest.raises(DataError, match=f"npz file .*im.npz: X holds {shown} at index "
                       "\\[2, 0, 1, 0\\]; image arrays must hold finite numbers"):
        read_source(f"npz:{tmp_path / 'im.npz'}", {}, 0)


# ---------------------------------------------------------------------------- target and ignore


@pytest.mark.parametrize("target", ["y", ["y", "w"]])
def test_a_target_also_marked_ignore_is_refused(target):
    with pytest.raises(ConfigError, match='data.columns.y: "ignore" contradicts data.target, '
                       "which names 'y'; a target cannot be ignored"):
        load_config({"data": {"source": "csv:t.csv", "target": target,
                              "columns": {"y": "ignore", "x": "numeric"}}})
    assert load_config({"data": {"source": "csv:t.csv", "target": target,
                                 "columns": {"y": "numeric"}}})


# ---------------------------------------------------------------------------- skipped files


def test_entries_of_an_image_folder_that_are_not_images_are_counted(tmp_path, caplog):
    root = write_image_folder(tmp_path / "imgs")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / "nested").mkdir()
    (root / "README.md").write_text("readme")
    (root / "a" / ".DS_Store").write_bytes(b"hidden: not counted")
    with caplog.at_level(logging.WARNING, logger="trainwell.data.sources"):
        raw = read_source(f"images:{root}", {}, 0)
    assert isinstance(raw, RawImageFolder) and len(raw.paths) == 12
    assert raw.skipped == ["README.md", "a/notes.txt", "b/nested/"]
    assert "skipped 3 entries that are not images" in caplog.text
    assert "README.md, a/notes.txt, b/nested/" in caplog.text


def test_a_clean_folder_skips_nothing_and_says_nothing(tmp_path, caplog):
    root = write_image_folder(tmp_path / "imgs")
    with caplog.at_level(logging.WARNING, logger="trainwell.data.sources"):
        raw = read_source(f"images:{root}", {}, 0)
    assert raw.skipped == [] and caplog.text == ""


def test_files_skipped_in_a_flat_folder_for_prediction(tmp_path, caplog):
    root = write_image_folder(tmp_path / "imgs")
    flat = tmp_path / "new"
    flat.mkdir()
    for name in ("00.png", "01.png"):
        (flat / name).write_bytes((root / "a" / name).read_bytes())
    (flat / "list.csv").write_text("a,b\n")
    with caplog.at_level(logging.WARNING, logger="trainwell.data.sources"):
        raw = read_source(f"images:{flat}", {}, 0, for_prediction=True)
    assert [p.name for p in raw.paths] == ["00.png", "01.png"] and raw.labels is None
    assert raw.skipped == ["list.csv"] and "skipped 1 entries" in caplog.text


# ---------------------------------------------------------------------------- at preparation


def test_a_class_only_in_val_or_test_is_warned_about_and_recorded(tmp_path, caplog):
    from trainwell.data.summary import describe

    path = tmp_path / "s.csv"
    part = ["train"] * 8 + ["val"] * 3 + ["test"] * 3
    label = ["a", "b"] * 4 + ["a", "c", "c"] + ["d", "b", "a"]
    pd.DataFrame({"x": np.arange(14.0), "y": label, "part": part}).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="trainwell.data.preparation"):
        data = prepare(DataConfig(source=f"csv:{path}", target="y", split={"column": "part"}), 0)
    assert "class 'c' of csv file" in caplog.text and "in the val split (2 rows) but not in " \
        "train" in caplog.text
    assert "class 'd' of csv file" in caplog.text and "in the test split (1 rows)" in caplog.text
    assert data.info["classes_not_in_train"] == {"val": ["c"], "test": ["d"]}
    assert "classes in val but not in train (never learned): ['c']" in describe(data)


def test_a_stratified_split_warns_about_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="trainwell.data.preparation"):
        data = prepare(DataConfig(source="builtin:iris"), 0)
    assert "not in train" not in caplog.text and "classes_not_in_train" not in data.info


def test_skipped_image_files_are_counted_in_the_data_info(tmp_path):
    from trainwell.data.summary import describe

    root = write_image_folder(tmp_path / "imgs")
    (root / "a" / "notes.txt").write_text("not an image")
    data = prepare(DataConfig(source=f"images:{root}", images={"mode": "L"}), 0)
    assert data.info["skipped_files"] == {"count": 1, "paths": ["a/notes.txt"]}
    assert "skipped: 1 entries of the image folder that are not images (a/notes.txt)" \
        in describe(data)


def test_a_guessed_target_marked_ignore_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(12.0), "label": [0, 1] * 6}).to_csv(path, index=False)
    with pytest.raises(DataError, match="data.target is not set, so column 'label' of csv file "
                       '.*t.csv would be the target, but data.columns.label = "ignore"'):
        prepare(DataConfig(source=f"csv:{path}", columns={"label": "ignore"}), 0)


def test_predicting_on_an_npz_of_the_wrong_width_names_both_widths(tmp_path):
    from trainwell.data import load_inference

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", X=rng.normal(size=(30, 3)), y=np.array([0, 1] * 15))
    data = prepare(DataConfig(source=f"npz:{tmp_path / 'train.npz'}"), 0)
    run = tmp_path / "run"
    run.mkdir()
    data.save(run)
    np.savez(tmp_path / "wide.npz", X=rng.normal(size=(4, 5)))
    with pytest.raises(DataError, match="npz file .*wide.npz: X has 5 columns, but this run was "
                       "fitted on 3 input columns \\(x0, x1, x2\\); give X of shape \\(n, 3\\)"):
        load_inference(run).load(tmp_path / "wide.npz")
    np.savez(tmp_path / "same.npz", X=rng.normal(size=(4, 3)))
    assert load_inference(run).load(tmp_path / "same.npz")[0].shape == (4, 3)

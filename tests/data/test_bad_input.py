"""Every bad input of issue 2 item 10: a clear DataError, exit code 2, nothing written."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from trainwell.cli import main

from .conftest import write_image_folder


def _csv(tmp_path, **cols):
    path = tmp_path / "in" / "t.csv"
    path.parent.mkdir(exist_ok=True)
    pd.DataFrame(cols).to_csv(path, index=False)
    return f'source = "csv:{path.as_posix()}"\ntarget = "y"'


def _missing_file(tmp_path):
    return 'source = "csv:nowhere/t.csv"', "csv file .*nowhere/t.csv does not exist"


def _unreadable_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    source = f'source = "parquet:{(tmp_path / "bad.parquet").as_posix()}"'
    return source, "bad.parquet cannot be read"


def _csv_is_a_folder(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    return f'source = "csv:{(tmp_path / "dir.csv").as_posix()}"', "dir.csv is not a file"


def _npz_without_y(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((4, 2)))
    source = f'source = "npz:{(tmp_path / "a.npz").as_posix()}"'
    return source, "must hold arrays 'X' and 'y'.*\\['X'\\]"


def _no_target_column(tmp_path):
    body = _csv(tmp_path, x=[1.0, 2.0], lable=[0, 1]).replace('target = "y"', 'target = "label"')
    return body, "target column 'label' is not a column.*did you mean 'lable'.*\\['x', 'lable'\\]"


def _nan_target(tmp_path):
    return _csv(tmp_path, x=np.arange(6.0), y=[0, 1, np.nan, 1, 0, 1]), \
        "target 'y'.*1 missing.*rows \\[2\\].*data.missing_target"


def _inf_target(tmp_path):
    return _csv(tmp_path, x=np.arange(6.0), y=[0.5, 1.5, np.inf, 1, 0, 1]), \
        "target 'y'.*infinite value \\(row 2\\)"


def _one_class(tmp_path):
    return _csv(tmp_path, x=np.arange(6.0), y=["a"] * 6), "one class only \\('a' in all 6 rows\\)"


def _too_few_rows(tmp_path):
    return _csv(tmp_path, x=np.arange(4.0), y=[0, 1, 0, 1]), \
        "4 rows are fewer than the splits need"


def _mixed_labels(tmp_path):
    return _csv(tmp_path, x=np.arange(6.0), y=["1", "2", "cat", "1", "2", "cat"]), \
        "label column 'y'.*mixes types: number \\(e.g. '1'\\), text \\(e.g. 'cat'\\)"


def _all_missing_feature(tmp_path):
    return _csv(tmp_path, x=np.arange(20.0), empty=[np.nan] * 20, y=[0, 1] * 10), \
        "feature column 'empty'.*entirely missing.*data.columns.empty = \"ignore\""


def _missing_without_impute(tmp_path):
    return _csv(tmp_path, x=[np.nan, *np.arange(19.0)], y=[0, 1] * 10), \
        "feature column 'x'.*1 missing values.*add \"impute\""


def _corrupt_image(tmp_path):
    root = write_image_folder(tmp_path / "imgs")
    (root / "b" / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return f'source = "images:{root.as_posix()}"', "image .*b/03.png cannot be read"


def _corrupt_image_read_lazily(tmp_path):
    root = write_image_folder(tmp_path / "imgs", per_class=8)
    (root / "a" / "05.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return (f'source = "images:{root.as_posix()}"\nimages = {{ memory_mb = 0.0001 }}',
            "image .*a/05.png cannot be read")


def _truncated_image(tmp_path):
    root = write_image_folder(tmp_path / "imgs")
    data = (root / "a" / "02.png").read_bytes()
    (root / "a" / "02.png").write_bytes(data[: len(data) // 2])
    return f'source = "images:{root.as_posix()}"', "image .*a/02.png cannot be read"


def _npz_not_a_zip(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip at all" * 10)
    return f'source = "npz:{(tmp_path / "x.npz").as_posix()}"', "x.npz is not an npz archive"


def _multiclass_target_with_one_class_left_after_drop(tmp_path):
    body = _csv(tmp_path, x=np.arange(6.0), y=["a", None, "a", None, "a", "a"])
    return body + '\nmissing_target = "drop"', "one class only \\('a' in all 4 rows\\)"


def _empty_class_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs")
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("no images here")
    return f'source = "images:{root.as_posix()}"', "class folder .*/c has no images"


def _step_on_wrong_kind(tmp_path):
    return 'source = "builtin:digits_images"\npreprocess = ["pca"]', \
        "step 'pca' does not apply to.*allowed for images: channel_mean"


def _unknown_param(tmp_path):
    return 'source = "builtin:moons"\nparams = { noize = 0.3 }', \
        "data.params.noize is not a parameter of builtin:moons; did you mean 'noise'"


CASES = [_missing_file, _unreadable_parquet, _csv_is_a_folder, _npz_without_y, _no_target_column,
         _nan_target, _inf_target, _one_class, _too_few_rows, _mixed_labels, _all_missing_feature,
         _missing_without_impute, _corrupt_image, _corrupt_image_read_lazily, _truncated_image,
         _empty_class_folder, _npz_not_a_zip, _multiclass_target_with_one_class_left_after_drop,
         _step_on_wrong_kind, _unknown_param]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_input_is_refused_clearly_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    body, match = case(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "exp.toml").write_text(f"[data]\n{body}\n")
    monkeypatch.chdir(work)
    before = sorted(os.listdir(work))
    assert main(["data", "describe", "exp.toml"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err
    assert re.search(match, captured.err), captured.err
    assert sorted(os.listdir(work)) == before


def test_dropping_missing_targets_is_counted(tmp_path):
    from trainwell.data import prepare
    from trainwell.data.config import DataConfig

    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(30.0), "y": [0, 1, None] * 10}).to_csv(path, index=False)
    data = prepare(DataConfig(source=f"csv:{path}", target="y", missing_target="drop"), 0)
    assert data.info["dropped_rows"]["missing_target"] == 10
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert 2 not in np.concatenate([s.index for s in data.splits.values()])


def test_bad_input_through_the_installed_command(tmp_path):
    """The real console entry point, in a fresh process: exit code 2, one line, no traceback."""
    import subprocess
    import sys

    body, match = _no_target_column(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "exp.toml").write_text(f"[data]\n{body}\n")
    proc = subprocess.run([sys.executable, "-m", "trainwell", "data", "describe", "exp.toml"],
                          cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert re.search(match, proc.stderr)
    assert sorted(os.listdir(work)) == ["exp.toml"]

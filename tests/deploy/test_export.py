"""``trainwell export``: an exported model predicts as ``trainwell predict`` does, to 1e-5 on the
test split, in a fresh process that does not import trainwell; bad input is one error line and
leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trainwell as tw
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.data.sources import read_source
from trainwell.deploy.export import export, read_metadata
from trainwell.errors import ConfigError, RunError

FORMATS = {"onnx": "model.onnx", "torchscript": "model.ts.pt", "torch.export": "model.pt2"}

# Run in a fresh interpreter: load each artefact with its own runtime, encode the raw test rows
# by the artefact's own input contract, and compare with `trainwell predict`'s output. It starts
# before the exports and imports its runtimes while they are written; then it reads the paths
# (one a line) from its stdin.
CHECK = textwrap.dedent('''
    import json, sys
    import numpy as np, pandas as pd
    import onnx, torch
    from onnx.reference import ReferenceEvaluator

    def load(fmt, path):
        if fmt == "onnx":
            import onnx
            from onnx.reference import ReferenceEvaluator
            props = {p.key: p.value for p in onnx.load(path).metadata_props}
            ev = ReferenceEvaluator(path)
            return json.loads(props["trainwell"]), lambda x: ev.run(None, {"input": x})
        import torch
        files = {"trainwell.json": ""}
        if fmt == "torchscript":
            m = torch.jit.load(path, _extra_files=files)
        else:
            m = torch.export.load(path, extra_files=files).module()
        return json.loads(files["trainwell.json"]), lambda x: [o.numpy() for o in
                                                               m(torch.from_numpy(x))]

    def encode(meta, raw_path):
        spec = meta["input"]
        if spec["kind"] == "images":
            return np.load(raw_path)["X"].astype(np.float32)
        frame = pd.read_csv(raw_path)
        x = np.empty((len(frame), len(spec["columns"])))
        for j, col in enumerate(spec["columns"]):
            values = frame[col["name"]]
            if col["type"] == "categorical":
                codes = {c: i for i, c in enumerate(col["codes"])}
                x[:, j] = [np.nan if pd.isna(v) else codes.get(str(v), -1) for v in values]
            else:
                x[:, j] = values.astype(float)
        return x

    args = sys.stdin.read().splitlines()
    for raw_path, pred_path, fmt, path in zip(*[iter(args)] * 4):
        want = pd.read_csv(pred_path)
        meta, run = load(fmt, path)
        proba, index = run(encode(meta, raw_path))
        classes = meta["classes"]
        expected = want[[f"proba_{c}" for c in classes]].to_numpy()
        diff = float(np.abs(proba - expected).max())
        assert diff <= 1e-5, (fmt, diff)
        labels = np.asarray([str(c) for c in classes])[index]
        assert (labels == want["prediction"].astype(str).to_numpy()).all(), fmt
        print(fmt, len(proba), diff)
    assert "trainwell" not in sys.modules
    print("trainwell not imported")
''')


def _table_csv(path: Path, n: int = 160) -> None:
    rng = np.random.default_rng(1)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[::23] = None
    x = rng.normal(size=n)
    x[::17] = np.nan
    label = np.where((color == "red") ^ (np.nan_to_num(x) > 0), "yes", "no")
    pd.DataFrame({"x": x, "price": rng.normal(size=n) * 1000 + 5e4, "color": color,
                  "flag": rng.choice([True, False], n), "label": label}).to_csv(path, index=False)


def _test_rows(run_dir: Path):
    cfg = load_config(run_dir / "config.toml")
    rows = prepare(cfg.data, cfg.seed).test.index
    return read_source(cfg.data.source, cfg.data.params, cfg.seed), rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    _table_csv(root / "t.csv")
    base = {"runs_dir": str(root / "runs"), "log": {"report": False}, "seed": 2}
    table = tw.fit({**base, "name": "table",
                    "data": {"source": f"csv:{root / 't.csv'}", "target": "label",
                             "preprocess": ["impute", "onehot", "standardize",
                                            {"name": "pca", "components": 5}]},
                    "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 2}},
                   quiet=True)
    images = tw.fit({**base, "name": "digits",
                     "data": {"source": "builtin:digits_images"},
                     "model": {"arch": "cnn", "channels": [4]},
                     "train": {"epochs": 1}}, quiet=True)
    raw, rows = _test_rows(table.run_dir)
    raw.frame.iloc[rows].drop(columns="label").to_csv(root / "table_test.csv", index=False)
    raw, rows = _test_rows(images.run_dir)
    np.savez(root / "digits_test.npz", X=raw.X[rows])
    return root, {"table": (table.run_dir, root / "table_test.csv"),
                  "digits": (images.run_dir, root / "digits_test.npz")}


@pytest.mark.slow
def test_exports_predict_as_trainwell_predict_without_trainwell(runs, capsys):
    root, named = runs
    fresh = subprocess.Popen([sys.executable, "-c", CHECK], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    try:
        args = []
        for name, (run_dir, raw_path) in named.items():
            pred = root / f"{name}_pred.csv"
            assert main(["predict", str(run_dir), str(raw_path), "--out", str(pred)]) == 0
            for fmt, file in FORMATS.items():
                out = root / f"{name}-{file}"
                assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
                said = capsys.readouterr().out
                assert f"wrote {out} ({fmt})" in said and "(test split)" in said
                args += [str(raw_path), str(pred), fmt, str(out)]
        stdout, stderr = fresh.communicate("\n".join(args), timeout=300)
    finally:
        if fresh.poll() is None:
            fresh.kill()
            fresh.wait()
    assert fresh.returncode == 0, stderr[-3000:]
    lines = stdout.strip().splitlines()
    assert lines[-1] == "trainwell not imported"
    n_test = [json.loads((d / "data.json").read_text())["splits"]["test"]
              for d, _ in named.values()]
    assert [line.split()[:2] for line in lines[:-1]] == [
        [fmt, str(n)] for n in n_test for fmt in FORMATS]


def test_the_metadata_holds_the_label_mapping_and_the_input_contract(runs):
    root, named = runs
    run_dir = named["table"][0]
    out = export(run_dir, "torchscript", root / "meta.ts.pt")
    meta = read_metadata(out.path)
    assert meta == out.metadata
    assert meta["classes"] == ["no", "yes"] and meta["task"] == "binary"
    columns = {c["name"]: c for c in meta["input"]["columns"]}
    assert list(columns) == ["x", "price", "color", "flag"]
    assert columns["color"] == {"name": "color", "type": "categorical",
                                "codes": ["blue", "green", "red"]}
    assert columns["flag"]["type"] == "boolean" and meta["input"]["dtype"] == "float64"
    assert meta["preprocessing"] == ["impute(strategy=mean, indicator=True)", "onehot",
                                     "standardize", "pca(components=5)"]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label_index"]
    assert meta["checked"]["on"] == "test split"


def test_a_missing_value_and_an_unseen_category_go_through_the_graph_as_through_predict(runs):
    import torch

    root, named = runs
    run_dir = named["table"][0]
    out = export(run_dir, "torchscript", root / "odd.ts.pt")
    frame = pd.DataFrame({"x": [np.nan, 0.5, 1.0], "price": [5e4, np.nan, 4e4],
                          "color": ["purple", None, "red"], "flag": [True, False, True]})
    from trainwell.deploy.export import encode_table

    pred = tw.load(run_dir)
    x = encode_table(frame, pred.transform.pipeline)
    assert x[0, 2] == -1 and np.isnan(x[1, 2])
    with warnings.catch_warnings():  # torch calls TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        proba, _ = torch.jit.load(str(out.path))(torch.from_numpy(x))
    assert np.allclose(proba.numpy(), pred.predict_proba(frame), atol=1e-6)


def test_data_given_from_python_is_checked_on_random_inputs(runs, tmp_path, caplog):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    run = tw.fit({"runs_dir": str(tmp_path), "log": {"report": False},
                  "model": {"arch": "mlp", "hidden": [4]}, "train": {"epochs": 1}},
                 data=(X, y), quiet=True)
    caplog.clear()
    out = tw.export(run.run_dir, "torchscript")  # the top-level entry point
    assert out.path == run.run_dir / "model.torchscript.pt" and out.checked_on == "random inputs"
    assert out.max_difference <= 1e-5
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == ["export: the run was trained on data given to fit(data=...) from Python, "
                    "which it does not keep; checking on random inputs"]  # no advice to resume


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_input_is_one_error_line_and_writes_nothing(runs, tmp_path, capsys):
    root, named = runs
    run_dir = named["table"][0]
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["export", str(run_dir), "--format", "tflite"]) == 2
    assert "--format must be one of onnx, torchscript, torch.export; got 'tflite'" in \
        _error_line(capsys)
    unfinished = tmp_path / "half"
    unfinished.mkdir()
    (unfinished / "meta.json").write_text('{"status": "running"}')
    (unfinished / "model.safetensors").write_bytes(b"")
    assert main(["export", str(unfinished)]) == 2
    assert "its status is 'running', not 'completed'" in _error_line(capsys)
    assert main(["export", str(tmp_path / "none")]) == 2
    assert "no such directory" in _error_line(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", str(run_dir), "--out", str(blocker / "m.onnx")]) == 2
    assert f"folder {blocker} does not exist" in _error_line(capsys)
    assert main(["export", str(run_dir), "--out", str(tmp_path)]) == 2
    assert "is a folder" in _error_line(capsys)
    assert main(["export", str(run_dir), "--format", "torch.export", "--out",
                 str(tmp_path / "m.pt")]) == 2
    assert "end the path with .pt2" in _error_line(capsys)
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_an_artefact_that_disagrees_is_not_written(runs, tmp_path, monkeypatch):
    import trainwell.deploy.export as ex

    root, named = runs
    monkeypatch.setattr(ex, "TOLERANCE", -1.0)  # any difference, even 0, is too much
    with pytest.raises(RunError, match="differ from the run's predictor .* nothing was written"):
        export(named["digits"][0], "torchscript", tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


def test_onnx_without_its_packages_names_the_extra(runs, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs the package\(s\) onnxscript: pip install "
                                          r"'trainwell\[onnx\]'"):
        export(runs[1]["table"][0], "onnx", tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_a_regression_run_exports_values_in_the_targets_own_units(tmp_path):
    import torch

    run = tw.fit({"runs_dir": str(tmp_path), "log": {"report": False},
                  "data": {"source": "builtin:diabetes", "target_scale": "standardize",
                           "preprocess": ["minmax"]},
                  "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 2}}, quiet=True)
    out = export(run.run_dir, "torchscript")
    assert out.path.name == "model.torchscript.pt" and out.checked_on == "test split"
    assert [o["name"] for o in out.metadata["outputs"]] == ["prediction"]
    raw, rows = _test_rows(run.run_dir)
    frame = raw.frame.iloc[rows]
    x = torch.from_numpy(frame[[c["name"] for c in out.metadata["input"]["columns"]]]
                         .to_numpy(dtype=np.float64, copy=True))
    with warnings.catch_warnings():  # torch calls TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        got = torch.jit.load(str(out.path))(x).numpy().reshape(-1)
    want = tw.load(run.run_dir).predict(frame).reshape(-1)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6)
    assert want.mean() > 50  # the target's own units (mean ~150), not the standardized scale

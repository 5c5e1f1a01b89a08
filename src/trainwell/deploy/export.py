"""``trainwell export RUN --format onnx|torchscript|torch.export``: one file that predicts
without trainwell.

The artefact is :class:`~trainwell.deploy.graph.Exported`: the run's fitted preprocessing, the
model and its output (probabilities and the class index, or values in the target's units). The
label mapping and the input contract ride in the artefact as the JSON document
:func:`export_metadata` builds, under the key ``trainwell`` of the ONNX model's
``metadata_props``, or as the extra file ``trainwell.json`` of a TorchScript or ``torch.export``
archive. Before the file takes its name, it is loaded back with the runtime a user would use
(onnxruntime if installed, else ONNX's reference evaluator; ``torch.jit.load``;
``torch.export.load``) and its outputs are compared with the run's predictor on the run's test
split; a difference over 1e-5 fails the export and nothing is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainwell.errors import ConfigError, DataError, RunError

if TYPE_CHECKING:
    from trainwell.api import Predictor

log = logging.getLogger(__name__)

#: format -> the default file name in the run directory
FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "torch.export": "model.pt2"}
METADATA_KEY = "trainwell"
METADATA_FILE = "trainwell.json"
#: outputs of the artefact may differ from the predictor's by at most this much (absolute, and
#: relative for values above 1)
TOLERANCE = 1e-5
MAX_CHECK_ROWS = 2048
ONNX_EXTRA = "pip install 'trainwell[onnx]'"


@dataclass
class ExportResult:
    """What :func:`export` wrote and how it was checked."""

    path: Path
    format: str
    checked_on: str  # "test split" | "val split" | "train split" | "random inputs"
    rows: int
    max_difference: float
    metadata: dict[str, Any]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return fmt


def require_onnx() -> None:
    """ONNX export needs ``onnx`` and ``onnxscript``, the optional extra ``trainwell[onnx]``."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--format onnx needs the package(s) {', '.join(missing)}: "
                          f"{ONNX_EXTRA}")


def check_run(run_dir: Path) -> None:
    """``run_dir`` must be a completed run directory (not an ensemble, not unfinished)."""
    from trainwell.runs import read_json

    if not run_dir.is_dir():
        raise RunError(f"cannot export {run_dir}: no such directory")
    if (run_dir / "ensemble.json").is_file():
        raise RunError(f"cannot export {run_dir}: it is an ensemble directory; export one of its "
                       "members (members/<k>)")
    if not (run_dir / "meta.json").is_file() or not (run_dir / "model.safetensors").is_file():
        raise RunError(f"cannot export {run_dir}: it has no meta.json / model.safetensors (is it "
                       "a finished run directory?)")
    status = read_json(run_dir / "meta.json").get("status")
    if status != "completed":
        raise RunError(f"cannot export {run_dir}: its status is {status!r}, not 'completed'; "
                       f"finish it first (trainwell train --resume {run_dir})")


def check_out(out: Path) -> None:
    """The folder of ``out`` must exist and be writable, and ``out`` not be a folder."""
    parent = out.parent
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; give a file path")
    if not parent.is_dir():
        raise RunError(f"--out {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {out}: folder {parent} is not writable")


# ---------------------------------------------------------------------------- the input contract


def input_contract(pipe: Any, task: str, classes: list[Any] | None) -> dict[str, Any]:
    """The JSON description of the artefact's input and outputs."""
    from trainwell.deploy.graph import code_tables

    if pipe.kind == "table":
        tables = code_tables(pipe)
        columns = []
        for name, kind in pipe.input.get("columns", []):
            entry: dict[str, Any] = {"name": name, "type": kind}
            if kind == "categorical":
                entry["codes"] = tables[name]
            columns.append(entry)
        inp: dict[str, Any] = {
            "name": "input", "kind": "table", "dtype": "float64", "shape": [None, len(columns)],
            "columns": columns,
            "encoding": "one column per raw feature in this order: numbers as they are, booleans "
                        "as 0/1, a categorical value as its index in the column's codes (-1: "
                        "not among them); NaN: missing",
        }
    else:
        inp = {"name": "input", "kind": "images", "dtype": "float32",
               "shape": [None, *pipe.input["shape"]],
               "encoding": "images as the run was trained on them (before its preprocessing)"}
    outputs: list[dict[str, Any]]
    if task == "regression":
        outputs = [{"name": "prediction", "dtype": "float64", "shape": [None, None],
                    "meaning": "predicted values in the target's own units"}]
    else:
        n = len(classes) if classes is not None else 2
        outputs = [{"name": "probabilities", "dtype": "float32", "shape": [None, n],
                    "meaning": "one column per class, in the order of 'classes'"},
                   {"name": "label_index", "dtype": "int64", "shape": [None],
                    "meaning": "the predicted class: an index into 'classes'"}]
    return {"input": inp, "outputs": outputs}


def encode_table(frame: Any, pipe: Any) -> np.ndarray:
    """A DataFrame of raw columns as the exported input: float64 (n, columns), categorical
    values as codes (-1 unseen, NaN missing)."""
    from trainwell.data.tables import encode
    from trainwell.deploy.graph import code_tables

    types = dict(pipe.input.get("columns", []))
    table = encode(frame, types, "the input")
    tables = code_tables(pipe)
    out = np.empty((len(frame), len(types)), dtype=np.float64)
    num_i = cat_i = 0
    for j, (name, kind) in enumerate(types.items()):
        if kind == "categorical":
            index = {c: float(k) for k, c in enumerate(tables[name])}
            out[:, j] = [np.nan if v is None else index.get(v, -1.0) for v in table.cat[:, cat_i]]
            cat_i += 1
        else:
            out[:, j] = table.num[:, num_i]
            num_i += 1
    return out


def export_metadata(predictor: Predictor, fmt: str) -> dict[str, Any]:
    from trainwell import __version__

    pipe = predictor.transform.pipeline
    return {
        "format": "trainwell-export",
        "version": 1,
        "trainwell": __version__,
        "export_format": fmt,
        "run": predictor.run_dir.name,
        "task": predictor.task,
        "classes": predictor.classes,
        "preprocessing": [s.label() for s in pipe.specs],
        **input_contract(pipe, predictor.task, predictor.classes),
    }


# ---------------------------------------------------------------------------- checking rows


def _check_rows(predictor: Predictor) -> tuple[np.ndarray, Any, str]:
    """``(exported input, predictor input, which rows)``: the run's test split re-read from its
    source (the val or train split if it has none), or random inputs of the contract when the
    source cannot be read (data given from Python, a moved file)."""
    from trainwell.config import load_config
    from trainwell.data import prepare
    from trainwell.data.sources import RawImageFolder, RawImages, read_source

    cfg = load_config(predictor.run_dir / "config.toml")
    pipe = predictor.transform.pipeline
    try:
        seed = cfg.seed if cfg.data.seed is None else cfg.data.seed
        raw = read_source(cfg.data.source, cfg.data.params, seed,
                          dialect=cfg.data.csv_dialect())
        prepared = prepare(cfg.data, cfg.seed)
    except DataError as exc:
        if cfg.data.source.startswith("memory:"):  # the error's advice is about resuming
            log.warning("export: the run was trained on data given to fit(data=...) from Python, "
                        "which it does not keep; checking on random inputs")
        else:
            log.warning("export: the run's data cannot be read (%s); checking on random inputs",
                        exc)
        return (*_random_rows(pipe), "random inputs")
    which = next((k for k in ("test", "val", "train") if len(prepared.splits[k])), "train")
    rows = np.asarray(prepared.splits[which].index)[:MAX_CHECK_ROWS]
    if isinstance(raw, RawImages):
        x = np.ascontiguousarray(raw.X[rows], dtype=np.float32)
        return x, x, f"{which} split"
    if isinstance(raw, RawImageFolder):
        from trainwell.data.images import read_many

        x = read_many([raw.paths[i] for i in rows], pipe.input["mode"], pipe.input["size"])
        return x, x, f"{which} split"
    frame = raw.frame.iloc[rows].reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return encode_table(frame, pipe), frame, f"{which} split"


def _random_rows(pipe: Any, n: int = 64) -> tuple[np.ndarray, Any]:
    import pandas as pd

    from trainwell.deploy.graph import code_tables

    rng = np.random.default_rng(0)
    if pipe.kind != "table":
        x = rng.uniform(0, 1, (n, *pipe.input["shape"])).astype(np.float32)
        return x, x
    tables = code_tables(pipe)
    cols: dict[str, Any] = {}
    for name, kind in pipe.input.get("columns", []):
        if kind == "categorical":
            codes = rng.integers(0, max(len(tables[name]), 1), n)
            cols[name] = [tables[name][c] if tables[name] else "unseen" for c in codes]
        elif kind == "boolean":
            cols[name] = rng.integers(0, 2, n).astype(np.float64)
        else:
            cols[name] = rng.normal(size=n)
    frame = pd.DataFrame(cols)
    return encode_table(frame, pipe), frame


def _reference(predictor: Predictor, raw: Any) -> list[np.ndarray]:
    """The predictor's outputs on ``raw``, as the artefact gives them."""
    from trainwell.train.metrics import output_predictions

    out = predictor.outputs(raw)
    if predictor.task == "regression":
        values = predictor.transform.target_units(out)
        return [np.asarray(values.detach().double().numpy() if hasattr(values, "detach")
                           else values, dtype=np.float64).reshape(len(out), -1)]
    arrays = output_predictions(out, predictor.task)
    return [arrays["proba"], arrays["y_pred"]]


# ---------------------------------------------------------------------------- writing, reading


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters' chatter (progress lines, deprecation notes) kept off the user's screen."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _write(module: Any, example: Any, fmt: str, path: Path, meta: str) -> None:
    import torch

    dynamic = {"x": {0: torch.export.Dim.DYNAMIC}}
    with _quiet(), torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(module, (example,), check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: meta})
        elif fmt == "torch.export":
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
            torch.export.save(program, str(path), extra_files={METADATA_FILE: meta})
        else:
            import onnx

            names = ["prediction"] if module.task == "regression" else ["probabilities",
                                                                       "label_index"]
            onnx_program = torch.onnx.export(module, (example,), dynamo=True,
                                             input_names=["input"], output_names=names,
                                             dynamic_shapes=dynamic, external_data=False,
                                             verbose=False)
            assert onnx_program is not None  # the dynamo exporter returns its program
            proto = onnx_program.model_proto
            onnx.helper.set_model_props(proto, {METADATA_KEY: meta})
            onnx.save_model(proto, str(path))


def onnx_runner(path: Path) -> Any:
    """``run(x) -> outputs`` of an ONNX file: onnxruntime if installed, else ONNX's reference
    evaluator."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(str(path))
        return lambda x: evaluator.run(None, {"input": x})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})


def _read_back(fmt: str, path: Path, x: np.ndarray) -> list[np.ndarray]:
    import torch

    if fmt == "onnx":
        return [np.asarray(o) for o in onnx_runner(path)(x)]
    with _quiet(), torch.no_grad():
        if fmt == "torchscript":
            out = torch.jit.load(str(path))(torch.from_numpy(x))
        else:
            out = torch.export.load(str(path)).module()(torch.from_numpy(x))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in outs]


def _difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """The largest difference of outputs, relative above 1; inf when shapes or labels differ."""
    if len(got) != len(want):
        return float("inf")
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g).reshape(len(w), -1).astype(np.float64)
        w = np.asarray(w).reshape(len(w), -1).astype(np.float64)
        if g.shape != w.shape:
            return float("inf")
        if g.size:
            worst = max(worst, float(np.max(np.abs(g - w) / np.maximum(1.0, np.abs(w)))))
    return worst


# ---------------------------------------------------------------------------- export


def export(run_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None, *,
           trust_code: bool = False) -> ExportResult:
    """Write a run's model, fitted preprocessing and label mapping as one ONNX, TorchScript or
    ``torch.export`` file, checked against the run's predictor before it takes its name.

    Args:
        run_dir: a completed run directory.
        fmt: ``"onnx"``, ``"torchscript"`` or ``"torch.export"``.
        out: the file to write; default ``RUN/model.onnx``, ``RUN/model.torchscript.pt`` or
            ``RUN/model.pt2``.
        trust_code: load a run whose ``model.arch`` is Python code (docs/trust.md).

    Raises:
        ConfigError: an unknown format, or ONNX without its packages (the extra is named).
        RunError: not a completed run, a run the format cannot hold ([heads], [domain]), an
            unwritable ``out``, or an artefact whose outputs differ from the predictor's.
    """
    import torch

    from trainwell.api import load
    from trainwell.deploy.graph import Exported as Graph

    check_format(fmt)
    run_dir = Path(run_dir)
    check_run(run_dir)
    path = Path(out) if out is not None else run_dir / FORMATS[fmt]
    check_out(path)
    if fmt == "torch.export" and path.suffix != ".pt2":
        raise ConfigError(f"--out {path}: a torch.export archive is a .pt2 file "
                          "(torch.export.load reads that name); end the path with .pt2")
    if fmt == "onnx":
        require_onnx()
    predictor = load(run_dir, trust_code=trust_code)
    if predictor.heads or "domain" in predictor.data_info:
        raise RunError(f"cannot export {run_dir}: a run with [heads] or [domain] has several "
                       "outputs; export covers one-head runs")
    pipe = predictor.transform.pipeline
    meta = export_metadata(predictor, fmt)
    x, raw, checked_on = _check_rows(predictor)
    want = _reference(predictor, raw)
    meta["checked"] = {"on": checked_on, "rows": int(len(x)), "tolerance": TOLERANCE}
    # weights without gradients: outputs a user can turn into arrays as they are
    module = Graph(pipe, predictor.model, predictor.task).eval().requires_grad_(False)
    example = torch.from_numpy(x if len(x) >= 2 else np.concatenate([x, x, x])[:2])
    # written under a name of its own beside ``out``, renamed once checked
    tmp = path.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        text = json.dumps(meta, ensure_ascii=False)
        _write(module, example, fmt, tmp, text)
        got = _read_back(fmt, tmp, x)
        diff = _difference(got, want)
        if not diff <= TOLERANCE:
            raise RunError(f"the exported {fmt} model's outputs differ from the run's predictor by "
                           f"{diff:.3g} (> {TOLERANCE:g}) on the {checked_on}; nothing was written")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, fmt, checked_on, int(len(x)), diff, meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``trainwell`` document of an exported file (any of the three formats)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                 .metadata_props}
        return dict(json.loads(props[METADATA_KEY]))
    import zipfile

    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(f"extra/{METADATA_FILE}"))
        return dict(json.loads(z.read(name)))


__all__ = ["FORMATS", "ExportResult", "check_format", "encode_table", "export", "export_metadata",
           "input_contract", "onnx_runner", "read_metadata"]

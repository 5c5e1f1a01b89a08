"""The bad-input corpus: every user mistake through the real command, one line, exit 2.

Each case writes its inputs (a config, a data file, an image folder, a damaged run directory)
into a folder of its own, runs ``python -m trainwell ...`` there, and checks what a user sees:
exit code 2, exactly one ``error:`` line on stderr (an invalid config continues it with one
indented line per field) naming the field, file or argument at fault, no traceback, and
nothing new or changed on disk. Most cases are refused
before torch is imported (a fraction of a second); those that read data or a run need it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import trainwell

IRIS = '[data]\nsource = "builtin:iris"\n'


def cfg(body: str) -> dict[str, str]:
    """A config ``c.toml`` of iris with ``body`` appended."""
    return {"c.toml": IRIS + body}


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A gray PNG of ``width`` x ``height``, holding ``rows`` rows of pixels (all of them by
    default; a header may claim far more than the file holds)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\x80" * width) * (height if rows is None else rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(
        b"IEND", b""
    )


def image_folder(**extra: bytes) -> dict[str, str | bytes]:
    """Two classes of six small images each, and ``extra`` files beside them."""
    files: dict[str, str | bytes] = {
        f"pics/{label}/{i}.png": png(4, 4) for label in "ab" for i in range(6)
    }
    return {**files, **extra, "c.toml": '[data]\nsource = "images:pics"\n'}


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    """One bad input: the command's arguments, the files it finds, what its error must say."""

    id: str
    args: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    says: tuple[str, ...] = ()  # substrings of the error line: the field, file or value
    run: bool = False  # a finished run at runs/r1 (damaged by ``files``)


def c(id: str, args: str, files: dict[str, str | bytes] | None = None, *says: str,
      run: bool = False) -> Case:
    return Case(id, tuple(args.split()), files or {}, says, run)


CHECK = "check c.toml"
TRAIN = "train c.toml --quiet"

CASES = [
    # ---- the config file (refused by `trainwell check` before anything is imported)
    c("unknown-key", CHECK, cfg('[model]\nactvation = "relu"\n'), "model.actvation",
      "activation"),
    c("unknown-section", CHECK, cfg("[modle]\nhidden = [8]\n"), "modle"),
    c("wrong-type", CHECK, cfg('[train]\nepochs = "ten"\n'), "train.epochs", "ten"),
    c("out-of-range", CHECK, cfg("[train]\nepochs = 0\n"), "train.epochs", "0"),
    c("bad-choice", CHECK, cfg('[model]\nnorm = "batchy"\n'), "model.norm", "batchy"),
    c("unknown-arch", CHECK, cfg('[model]\narch = "mlpp"\n'), "mlpp"),
    c("python-arch-malformed", CHECK, cfg('[model]\narch = "python:nets"\n'), "model.arch",
      "python:module:factory"),
    c("unknown-activation", CHECK, cfg('[model]\nactivation = "relux"\n'), "model.activation",
      "relux"),
    c("unknown-init", CHECK, cfg('[model]\ninit = "kaiming_wrong"\n'), "model.init",
      "kaiming_wrong"),
    c("hidden-zero", CHECK, cfg("[model]\nhidden = [0]\n"), "model.hidden"),
    c("dropout-above-one", CHECK, cfg("[model]\ndropout = 1.5\n"), "model.dropout", "1.5"),
    c("unknown-optimizer", CHECK, cfg('[train]\noptimizer = { name = "adamm" }\n'),
      "train.optimizer", "adamm"),
    c("negative-lr", CHECK, cfg('[train]\noptimizer = { name = "sgd", lr = -1.0 }\n'), "lr",
      "-1"),
    c("unknown-schedule", CHECK, cfg('[train]\nschedule = "cosinus"\n'), "train.schedule",
      "cosinus"),
    c("batch-size-zero", CHECK, cfg("[train]\nbatch_size = 0\n"), "train.batch_size"),
    c("bad-precision", CHECK, cfg('[train]\nprecision = "fp8"\n'), "train.precision", "fp8"),
    c("unknown-metric", CHECK, cfg('[train]\nmetrics = ["roc_aucc"]\n'), "train.metrics",
      "roc_aucc", "roc_auc"),
    c("bad-class-weight", CHECK, cfg('[train]\nclass_weight = "even"\n'), "train.class_weight",
      "even", "balanced"),
    c("smoothing-with-hinge", CHECK, cfg('[train]\nloss = "hinge"\nlabel_smoothing = 0.1\n'),
      "train.label_smoothing", "hinge"),
    c("class-weight-unknown-label", TRAIN, cfg("[train.class_weight]\nsetosa = 2.0\n"),
      "train.class_weight", "setosa", "classes: 0, 1, 2"),
    c("python-metric-untrusted", TRAIN, cfg('[train]\nmetrics = ["python:os:getcwd"]\n'),
      "train.metrics", "--trust-code"),
    c("negative-patience", CHECK, cfg("[train]\nearly_stopping = { patience = -1 }\n"),
      "patience"),
    c("loss-for-another-task", CHECK,
      cfg('task = "regression"\n[train]\nloss = "cross_entropy"\n'), "cross_entropy",
      "regression"),
    c("unknown-task", CHECK, cfg('task = "ranking"\n'), "data.task", "ranking"),
    c("split-above-one", CHECK, cfg("[data.split]\nval = 1.5\n"), "data.split.val"),
    c("split-negative", CHECK, cfg("[data.split]\ntest = -0.1\n"), "data.split.test"),
    c("epochs-fraction", CHECK, cfg("[train]\nepochs = 1.5\n"), "train.epochs"),
    c("target-ignored", CHECK,
      {"c.toml": '[data]\nsource = "csv:d.csv"\ntarget = "y"\ncolumns = { y = "ignore" }\n'},
      "data.columns.y", "target"),
    c("unknown-source-kind", CHECK, {"c.toml": '[data]\nsource = "ftp:x.csv"\n'}, "ftp"),
    c("seed-text", CHECK, {"c.toml": 'seed = "x"\n' + IRIS}, "seed"),
    c("runs-dir-number", CHECK, {"c.toml": "runs_dir = 5\n" + IRIS}, "runs_dir"),
    c("unknown-doctor-check", CHECK, cfg('[doctor]\nchecks = ["lr", "astrology"]\n'),
      "doctor.checks", "astrology"),
    c("bad-search-space", CHECK,
      cfg('[tune]\nspace = { "train.optimizer.lr" = "loguniform(0, 1)" }\n'),
      "train.optimizer.lr"),
    c("search-space-unknown-field", CHECK,
      cfg('[tune]\nspace = { "train.optimiser.lr" = "loguniform(1e-4, 1e-1)" }\n'),
      "train.optimiser"),
    c("not-toml", CHECK, {"c.toml": "x = = 1\n"}, "c.toml", "TOML"),
    c("duplicate-key", CHECK, {"c.toml": "seed = 1\nseed = 2\n"}, "c.toml"),
    c("not-utf8", CHECK, {"c.toml": b"seed = 1\n# \xff\xfe\n"}, "c.toml"),
    c("nested-too-deep", CHECK, {"c.toml": "a = " + "[" * 100_000 + "]" * 100_000},
      "c.toml", "deep"),
    c("missing-config", "check missing.toml", None, "missing.toml"),
    c("config-is-a-folder", "check conf.d", {"conf.d/x": ""}, "conf.d", "folder"),
    # ---- --set overrides
    c("set-unknown-path", CHECK + " --set train.epoch=3", cfg(""), "train.epoch"),
    c("set-bad-value", CHECK + " --set train.optimizer.lr=abc", cfg(""), "train.optimizer.lr",
      "abc"),
    c("set-without-value", CHECK + " --set train.epochs", cfg(""), "train.epochs"),
    c("set-out-of-range", CHECK + " --set model.dropout=2", cfg(""), "model.dropout"),
    c("set-list-text", CHECK + " --set model.hidden=abc", cfg(""), "model.hidden"),
    # ---- command-line arguments
    c("unknown-command", "trian c.toml", cfg(""), "trian"),
    c("unknown-option", TRAIN + " --epochs 3", cfg(""), "--epochs"),
    c("workers-not-a-number", "tune c.toml --workers abc", cfg(""), "--workers", "abc"),
    c("workers-zero", "tune c.toml --workers 0", cfg(""), "--workers", "0"),
    c("tune-without-config", "tune", None, "CONFIG"),
    c("train-without-config", "train", None, "CONFIG"),
    c("train-config-and-resume", "train c.toml --resume runs/r1", cfg(""), "--resume"),
    c("resume-with-name", "train --resume runs/r1 --name x", None, "--name"),
    c("predict-without-out", "predict runs/r1 new.csv", None, "--out"),
    c("predict-out-kind", "predict runs/r1 new.csv --out p.txt", None, "--out", "p.txt"),
    c("summary-without-config", "model summary", None, "CONFIG"),
    c("describe-without-config", "data describe", None, "CONFIG"),
    c("report-without-runs", "report", None, "RUN"),
    c("lab-width-text", "lab init-stats --width wide", None, "--width", "wide"),
    c("doctor-apply-without-lr", "doctor c.toml --apply out.toml",
      cfg('[doctor]\nchecks = ["init"]\n'), "doctor.checks", "lr"),
    c("report-missing-folder", "report runs/none", None, "runs/none"),
    c("report-same-run-twice", "report runs/r1 runs/r1", None, "runs/r1", "twice", run=True),
    c("report-a-file", "report c.toml", cfg(""), "c.toml"),
    # ---- data files (read once torch is loaded: the costlier cases)
    c("csv-missing", TRAIN, {"c.toml": '[data]\nsource = "csv:d.csv"\ntarget = "y"\n'},
      "d.csv"),
    c("parquet-not-parquet", TRAIN,
      {"c.toml": '[data]\nsource = "parquet:d.parquet"\ntarget = "y"\n',
       "d.parquet": "a,y\n1,2\n"}, "d.parquet"),
    c("npz-object-array", TRAIN,
      {"c.toml": '[data]\nsource = "npz:d.npz"\n',
       "d.npz": npz(X=np.array([[1], "a"], dtype=object), y=np.array([0, 1]))}, "d.npz"),
    c("image-corrupt", TRAIN, image_folder(**{"pics/a/cut.png": png(4, 4)[:40]}), "cut.png"),
    c("image-bomb-header", TRAIN,
      image_folder(**{"pics/a/bomb.png": png(60000, 60000, rows=1)}), "bomb.png"),
    # ---- run directories (a finished run at runs/r1, then damaged)
    c("run-arch-is-code", "predict runs/r1 new.csv --out p.csv",
      {"runs/r1/config.toml": "<arch python:os:system>"}, "model.arch", "python:os:system",
      "--trust-code", run=True),
    c("run-npz-wrong-width", "predict runs/r1 new.npz --out p.csv",
      {"new.npz": npz(X=np.zeros((2, 3)))}, "new.npz", "3 columns", "(n, 4)", run=True),
    c("run-model-truncated", "predict runs/r1 new.csv --out p.csv",
      {"runs/r1/model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\""},
      "model.safetensors", run=True),
    c("run-checkpoint-wrong-type", "train --resume runs/r1 --quiet",
      {"runs/r1/checkpoints/last.json": '{"token": "t", "state": []}',
       "runs/r1/meta.json": '{"status": "running"}'}, "last.json", "state", run=True),
    # ---- the environment
    c("runs-dir-is-a-file", TRAIN, {**cfg(""), "runs": "a file\n"}, "runs_dir", "runs"),
    c("batch-norm-batch-of-one", TRAIN,
      cfg('[model]\nnorm = "batch"\n[train]\nbatch_size = 1\n'), "train.batch_size"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus-run")
    run = trainwell.fit(
        {"runs_dir": str(root / "runs"), "name": "r1", "data": {"source": "builtin:iris"},
         "model": {"hidden": [8]}, "train": {"epochs": 1}, "doctor": {"enabled": False},
         "log": {"report": False}},
        quiet=True,
    )
    return run.run_dir


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``, with a digest of each file's bytes (a run's ``.lock``, which
    names the process that last held it, aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


def write_inputs(folder: Path, case: Case, finished_run: Path) -> None:
    if case.run:
        shutil.copytree(finished_run, folder / "runs" / "r1")
        (folder / "new.csv").write_text(
            "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
            "5.1,3.5,1.4,0.2\n"
        )
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("<arch "):  # edit the run's arch
            arch = content.removeprefix("<arch ").removesuffix(">")
            text = path.read_text()
            path.write_text(text.replace('arch = "mlp"', f'arch = "{arch}"'))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def test_the_corpus_is_large_and_every_case_named_once():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path, finished_run):
    folder = tmp_path / "case"
    folder.mkdir()
    write_inputs(folder, case, finished_run)
    before = snapshot(folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-m", "trainwell", *case.args], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    # one error: its line, and the indented lines that continue it (an invalid config lists
    # each field it refuses on a line of its own)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), out.stderr
    assert all(line.startswith("  ") for line in lines[1:]), out.stderr
    message = " ".join(line.strip() for line in lines)
    for said in case.says:
        assert said in message, f"{said!r} not in {message!r}"
    assert out.returncode == 2, out.stderr
    assert snapshot(folder) == before, "the command left something on disk"

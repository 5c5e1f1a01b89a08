"""Damaged files and a damaged environment: one ``error:`` line naming the file, exit 2, nothing
half-written (issue 12, item 11).

Each case damages one file of a finished run the way a disk, an editor or a copy does
(truncated, altered bytes, wrong JSON types, missing keys, nesting deeper than any file
trainwell writes), runs the command that reads it, and checks the answer and that every file of
the run is byte for byte what it was. The environment cases: ``runs_dir`` naming a file, a
read-only runs folder, a disk that fills up mid-run, BatchNorm with a batch of one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import trainwell
from trainwell.cli import main
from trainwell.errors import ConfigError
from trainwell.train.checkpoint import load_checkpoint

TINY = {
    "name": "r1",
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [8]},
    "train": {"epochs": 2, "batch_size": 32, "checkpoint_every": 1},
    "doctor": {"enabled": False},
    "log": {"report": False},
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A finished run of TINY (iris, 2 epochs), never changed: cases copy it."""
    root = tmp_path_factory.mktemp("pristine")
    run = trainwell.fit({**TINY, "runs_dir": str(root / "runs")}, quiet=True)
    (root / "new.csv").write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    )
    return run.run_dir


@pytest.fixture
def work(pristine, tmp_path, monkeypatch) -> Path:
    """A copy of the pristine run at ``runs/r1`` under the test's folder, which is the cwd."""
    shutil.copytree(pristine, tmp_path / "runs" / "r1")
    shutil.copy(pristine.parent.parent / "new.csv", tmp_path / "new.csv")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and a digest of its bytes (a run's ``.lock``, which names the
    process that last held it, aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single ``error:`` line the command printed on stderr (warnings aside)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_the_undamaged_copy_predicts_and_resumes(work, capsys):
    """The control for the cases below: the same commands on the copy as it is succeed."""
    assert main(["predict", "runs/r1", "new.csv", "--out", "out.csv"]) == 0
    assert (work / "out.csv").read_text().count("\n") == 3
    edit_json("meta.json", _running)(work / "runs" / "r1")
    assert main(["train", "--resume", "runs/r1", "--quiet"]) == 0
    assert "error" not in capsys.readouterr().err


# ------------------------------------------------------------------- damaging one file


def truncate(name: str, size: int) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with open(run / name, "r+b") as fh:
            fh.truncate(size)

    return damage


def write(name: str, text: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_text(text)

    return damage


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)

    return damage


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        doc = json.loads((run / name).read_text())
        change(doc)
        (run / name).write_text(json.dumps(doc))

    return damage


def edit_tensors(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with safe_open(str(run / name), framework="pt") as fh:
            metadata = fh.metadata()  # the checkpoint's token stays: the pair still matches
        tensors = load_file(str(run / name))
        change(tensors)
        save_file(tensors, str(run / name), metadata=metadata)

    return damage


def altered_header(name: str) -> Callable[[Path], None]:
    """A safetensors file whose header claims a dtype its bytes do not fit (one byte flipped
    from F32 to F64)."""

    def damage(run: Path) -> None:
        raw = bytearray((run / name).read_bytes())
        (n,) = struct.unpack("<Q", raw[:8])
        header = raw[8 : 8 + n].replace(b'"F32"', b'"F64"', 1)
        (run / name).write_bytes(bytes(raw[:8] + header + raw[8 + n :]))

    return damage


DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000
MODERATELY_DEEP = '{"a":' * 200 + "1" + "}" * 200  # parses, but no trainwell file is like it


def _drop(key: str) -> Callable[[dict], None]:
    return lambda d: d.pop(key)


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _set_state(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d["state"].__setitem__(key, value)


def _first_key_shape(tensors: dict) -> None:
    key = sorted(tensors)[0]
    tensors[key] = torch.zeros(3, 3)


def _drop_first_key(tensors: dict) -> None:
    del tensors[sorted(tensors)[0]]


# (id, damage, the file the error must name, words the error must hold)
PREDICT_CASES = [
    ("model-truncated", truncate("model.safetensors", 1000), "model.safetensors", "damaged"),
    ("model-header-cut", truncate("model.safetensors", 5), "model.safetensors", "damaged"),
    ("model-empty", truncate("model.safetensors", 0), "model.safetensors", "damaged"),
    ("model-altered", altered_header("model.safetensors"), "model.safetensors", "damaged"),
    ("model-shape", edit_tensors("model.safetensors", _first_key_shape), "model.safetensors",
     "shape (3, 3)"),
    ("model-missing-tensor", edit_tensors("model.safetensors", _drop_first_key),
     "model.safetensors", "lacks 1"),
    ("data-array", write("data.json", "[1, 2]"), "data.json", "not a JSON object"),
    ("data-no-shape", edit_json("data.json", _drop("input_shape")), "data.json", "input_shape"),
    ("data-outputs-text", edit_json("data.json", _set("n_outputs", "three")), "data.json",
     "n_outputs"),
    ("data-task", edit_json("data.json", _set("task", "ranking")), "data.json", "task"),
    ("data-shape-negative", edit_json("data.json", _set("input_shape", [-4])), "data.json",
     "input_shape"),
    ("data-deep", write("data.json", DEEP_ARRAY), "data.json", "levels deep"),
    ("data-deep-object", write("data.json", DEEP_OBJECT), "data.json", "levels deep"),
    ("data-moderately-deep", write("data.json", MODERATELY_DEEP), "data.json", "levels deep"),
    ("data-not-utf8", write_bytes("data.json", b'{"task": "\xff\xfe"}'), "data.json", "UTF-8"),
    ("data-empty", truncate("data.json", 0), "data.json", "not valid JSON"),
    ("preprocess-array", write("preprocess.json", "[]"), "preprocess.json", "not a JSON object"),
    ("preprocess-tensors-cut", truncate("preprocess.safetensors", 10), "preprocess.safetensors",
     "damaged"),
    ("config-deep", write("config.toml", "a = " + DEEP_ARRAY), "config.toml", "deep"),
]


@pytest.mark.parametrize(
    "damage, names, words", [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_on_a_damaged_run_file(work, capsys, damage, names, words):
    run = work / "runs" / "r1"
    damage(run)
    before = tree(work)
    assert main(["predict", "runs/r1", "new.csv", "--out", "out.csv"]) == 2
    line = one_error(capsys)
    assert names in line and words in line, line
    assert tree(work) == before  # nothing written, nothing changed


def _running(doc: dict) -> None:
    doc["status"] = "running"


def _epoch_text(doc: dict) -> None:
    doc["state"]["epoch"] = "two"


def _history_numbers(doc: dict) -> None:
    doc["state"]["history"] = [1, 2]


def _tensor_ref(doc: dict) -> None:
    key = next(iter(doc["state"]["model"]))
    doc["state"]["model"][key] = {"__tensor__": "nowhere"}


def _rng_python(doc: dict) -> None:
    doc["state"]["rng"]["python"] = 1


RESUME_CASES = [
    ("meta-array", write("meta.json", "[]"), "meta.json", "not a JSON object"),
    ("meta-deep", write("meta.json", DEEP_ARRAY), "meta.json", "levels deep"),
    ("ckpt-no-state", edit_json("checkpoints/last.json", _drop("state")), "last.json", "state"),
    ("ckpt-state-array", edit_json("checkpoints/last.json", _set("state", [1])), "last.json",
     "state"),
    ("ckpt-token-number", edit_json("checkpoints/last.json", _set("token", 5)), "last.json",
     "token"),
    ("ckpt-state-marker", edit_json("checkpoints/last.json", _set("state", {"__tuple__": []})),
     "last.json", "state should be an object"),
    ("ckpt-epoch-text", edit_json("checkpoints/last.json", _epoch_text), "last.json", "epoch"),
    ("ckpt-no-epoch", edit_json("checkpoints/last.json", lambda d: d["state"].pop("epoch")),
     "last.json", "epoch"),
    ("ckpt-history-numbers", edit_json("checkpoints/last.json", _history_numbers), "last.json",
     "history"),
    ("ckpt-history-number", edit_json("checkpoints/last.json", _set_state("history", 5)),
     "last.json", "history"),
    ("ckpt-rng", edit_json("checkpoints/last.json", _rng_python), "last.json", "rng.python"),
    ("ckpt-model-empty", edit_json("checkpoints/last.json", _set_state("model", {})),
     "last.json", "model lacks"),
    ("ckpt-tensor-ref", edit_json("checkpoints/last.json", _tensor_ref), "last.json",
     "'nowhere'"),
    ("ckpt-optimizer", edit_json("checkpoints/last.json", _set_state("optimizer", {"x": 1})),
     "last.json", "optimizer"),
    ("ckpt-schedule", edit_json("checkpoints/last.json", _set_state("schedule", 3)),
     "last.json", "schedule"),
    ("ckpt-data-rng", edit_json("checkpoints/last.json", _set_state("data_rng", [1])),
     "last.json", "data_rng"),
    ("ckpt-json-cut", truncate("checkpoints/last.json", 100), "last.json", "not valid JSON"),
    ("ckpt-deep", write("checkpoints/last.json", DEEP_OBJECT), "last.json", "levels deep"),
    ("ckpt-tensors-cut", truncate("checkpoints/last.safetensors", 100), "last.safetensors",
     "damaged"),
    ("ckpt-tensors-altered", altered_header("checkpoints/last.safetensors"), "last.safetensors",
     "damaged"),
    ("ckpt-tensor-shape", edit_tensors("checkpoints/last.safetensors", _first_key_shape),
     "last.json", "shape (3, 3)"),
]


@pytest.mark.parametrize(
    "damage, names, words", [c[1:] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES]
)
def test_resume_from_a_damaged_run_file(work, capsys, damage, names, words):
    """A run killed mid-training (status running) whose checkpoint or meta.json was damaged
    afterwards: the resume is refused before anything of the run is rewritten."""
    run = work / "runs" / "r1"
    edit_json("meta.json", _running)(run)
    damage(run)
    before = tree(work)
    assert main(["train", "--resume", "runs/r1", "--quiet"]) == 2
    line = one_error(capsys)
    assert names in line and words in line, line
    assert tree(work) == before


@pytest.mark.parametrize(
    "damaged",
    [DEEP_ARRAY + "\n", "5\n", '{"epoch": "x"}\n', b"\xff\xfe\x00garbage\n"],
    ids=["deep", "number", "epoch-text", "not-utf8"],
)
def test_resume_over_a_damaged_statistics_log(work, capsys, damaged):
    """``stats.jsonl`` is a log: a damaged line ends it, as a torn one does, and the resume
    goes on (the log keeps the whole records before it)."""
    run = work / "runs" / "r1"
    edit_json("meta.json", _running)(run)
    good = (run / "stats.jsonl").read_bytes()
    data = damaged.encode() if isinstance(damaged, str) else damaged
    (run / "stats.jsonl").write_bytes(good + data)
    assert main(["train", "--resume", "runs/r1", "--quiet"]) == 0
    assert "error" not in capsys.readouterr().err
    assert (run / "stats.jsonl").read_bytes() == good


def test_a_checkpoint_its_parts_refuse_is_named(work, capsys):
    """State whose shape only the optimizer knows (a parameter group of another size) still
    ends in one line naming the checkpoint."""
    run = work / "runs" / "r1"
    edit_json("meta.json", _running)(run)

    def one_param(doc: dict) -> None:
        doc["state"]["optimizer"]["param_groups"][0]["params"] = [0]

    edit_json("checkpoints/last.json", one_param)(run)
    assert main(["train", "--resume", "runs/r1", "--quiet"]) == 2
    line = one_error(capsys)
    assert "checkpoints/last.json does not fit this run" in line, line
    assert json.loads((run / "checkpoints" / "last.json").read_text())["state"]["epoch"] == 2


# ------------------------------------------------------------------- trainwell report


def _npz(**arrays: np.ndarray) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        with open(run / "predictions.npz", "wb") as fh:
            np.savez(fh, **arrays)

    return damage


def _flip_bytes(run: Path) -> None:
    raw = bytearray((run / "predictions.npz").read_bytes())
    raw[200:260] = bytes(60)
    (run / "predictions.npz").write_bytes(bytes(raw))


REPORT_CASES = [
    ("npz-truncated", truncate("predictions.npz", 100), "predictions.npz", "cannot be read"),
    ("npz-garbage", write("predictions.npz", "garbage"), "predictions.npz", "cannot be read"),
    ("npz-bad-crc", _flip_bytes, "predictions.npz", "cannot be read"),
    ("npz-text", _npz(y_true=np.zeros(3), y_pred=np.array(["a", "b", "c"])), "predictions.npz",
     "y_pred holds"),
    ("npz-3d", _npz(y_true=np.zeros((3, 4, 5)), y_pred=np.zeros(3)), "predictions.npz",
     "y_true has shape"),
    ("npz-lengths", _npz(y_true=np.zeros(3), y_pred=np.zeros(4)), "predictions.npz",
     "different numbers of rows"),
    ("npz-huge-class", _npz(y_true=np.array([0, 10**9]), y_pred=np.array([0, 1])),
     "predictions.npz", "class indices"),
    ("results-deep", write("results.json", DEEP_ARRAY), "results.json", "levels deep"),
    ("metrics-deep-line", write("metrics.jsonl", DEEP_ARRAY + "\n"), None, None),
    ("config-deep", write("config.toml", "a = " + DEEP_ARRAY), "config.toml", "deep"),
]


@pytest.mark.parametrize(
    "damage, names, words", [c[1:] for c in REPORT_CASES], ids=[c[0] for c in REPORT_CASES]
)
def test_report_of_a_run_with_a_damaged_file(work, capsys, damage, names, words):
    """The report is most useful when a run went wrong: it is written, without the damaged
    file, and a warning names the file and what is wrong with it."""
    run = work / "runs" / "r1"
    damage(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", "runs/r1"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err, err
    assert (run / "report.html").is_file()
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if names is None:
        assert said == []
    else:
        assert len(said) == 1 and names in said[0] and words in said[0], said
        assert words in (run / "report.html").read_text()  # the page says it too


def test_report_warning_is_one_line_in_the_real_command(work):
    truncate("predictions.npz", 100)(work / "runs" / "r1")
    out = subprocess.run([sys.executable, "-m", "trainwell", "report", "runs/r1"], cwd=work,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("warning: runs/r1/predictions.npz cannot be read"), out.stderr


def test_study_report_with_a_damaged_study_json_and_a_trial_outside(tmp_path, pristine, capsys):
    from trainwell.report.studydata import load_study_dir

    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(DEEP_OBJECT)
    shutil.copytree(pristine, tmp_path / "elsewhere")
    (study / "trials.csv").write_text(
        "number,state,value,params.lr,run_dir\n0,COMPLETE,0.5,0.1,../elsewhere\n"
    )
    with pytest.warns(UserWarning, match=r"study\.json nests arrays or objects"):
        data = load_study_dir(study)
    assert data.info == {} and "study.json" in data.problems
    assert [t.number for t in data.trials] == [0] and data.trials[0].run is None


# ------------------------------------------------------------------- the environment


def test_runs_dir_naming_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file\n")
    (tmp_path / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[train]\nepochs = 1\n')
    before = tree(tmp_path)
    assert main(["train", "c.toml", "--quiet"]) == 2
    line = one_error(capsys)
    assert "runs_dir 'runs'" in line and "is a file" in line, line
    assert main(["train", "c.toml", "--quiet", "--set", "runs_dir=runs/sub"]) == 2
    line = one_error(capsys)
    assert "runs_dir 'runs/sub'" in line and "runs: is a file" in line, line
    assert tree(tmp_path) == before


def test_read_only_runs_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[train]\nepochs = 1\n')
    runs.chmod(0o555)
    try:
        if os.access(runs, os.W_OK):  # a superuser writes anyway: the system refuses for it
            real_mkdir = os.mkdir

            def refuse(path, *args, **kwargs):
                if Path(path).parent.resolve() == runs.resolve():
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real_mkdir(path, *args, **kwargs)

            monkeypatch.setattr(os, "mkdir", refuse)
        assert main(["train", "c.toml", "--quiet"]) == 2
    finally:
        runs.chmod(0o755)
    line = one_error(capsys)
    assert "runs_dir 'runs'" in line and "Permission denied" in line, line
    assert list(runs.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_mid_run_ends_in_one_line_and_a_resumable_run(tmp_path, monkeypatch, capsys):
    """From the second checkpoint on, every write of the run lands on ``/dev/full``, which the
    system answers with ENOSPC as a full disk does. The command names the file it could not
    write; no temporary file is left, and the checkpoint of the first epoch is whole."""
    import builtins

    import trainwell.runs as runs_module

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(
        'name = "full"\n[data]\nsource = "builtin:iris"\n[model]\nhidden = [8]\n'
        "[train]\nepochs = 3\ncheckpoint_every = 1\n[log]\nreport = false\n"
    )
    full = {"on": False, "checkpoints": 0}
    real_new_file = runs_module._new_file

    def new_file(folder: Path, prefix: str) -> tuple[Path, int]:
        if prefix.startswith(".last.safetensors."):
            full["checkpoints"] += 1
            full["on"] = full["on"] or full["checkpoints"] == 2  # full after the first one
        path, fd = real_new_file(folder, prefix)  # the temporary file exists, as it would
        if full["on"]:
            dev = os.open("/dev/full", os.O_WRONLY)
            os.dup2(dev, fd)  # but what is written to it goes nowhere: ENOSPC
            os.close(dev)
        return path, fd

    def open_full(path, mode="r", *args, **kwargs):  # noqa: ANN001, ANN202 - open's own
        if full["on"] and "a" in mode:
            return builtins.open("/dev/full", mode, *args, **kwargs)
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(runs_module, "_new_file", new_file)
    monkeypatch.setattr(runs_module, "open", open_full, raising=False)
    assert main(["train", "c.toml", "--quiet"]) == 2
    line = one_error(capsys)
    assert "error: runs/full/" in line and "No space left on device" in line, line
    monkeypatch.undo()
    run = tmp_path / "runs" / "full"
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert load_checkpoint(run / "checkpoints")["epoch"] == 1
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    # whole lines only (the third may or may not have been written before the disk filled);
    # a resume rewrites the log from the checkpoint
    assert epochs in ([1, 2], [1, 2, 3])


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_writes_refused_mid_run_in_the_real_command(tmp_path):
    """The real command, training; then the system refuses every write to it (its file-size
    limit drops to 0, which fails writes as a full disk does). One line names the file, exit 2,
    no partial file, and the last checkpoint still reads."""
    (tmp_path / "c.toml").write_text(
        'name = "big"\n[data]\nsource = "builtin:iris"\n[model]\nhidden = [8]\n'
        "[train]\nepochs = 2000\ncheckpoint_every = 1\n[doctor]\nenabled = false\n"
        "[log]\nreport = false\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainwell", "train", "c.toml", "--quiet"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        # the child gets EFBIG from a refused write instead of being killed by SIGXFSZ
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
    )
    log = tmp_path / "runs" / "big" / "metrics.jsonl"
    first = tmp_path / "runs" / "big" / "checkpoints" / "last.json"
    try:
        deadline = time.monotonic() + 120
        while not (first.is_file() and log.is_file() and log.read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, 0))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x and not x.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: runs/big/"), err
    assert "File too large" in lines[0]
    run = tmp_path / "runs" / "big"
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert load_checkpoint(run / "checkpoints")["epoch"] >= 1  # the last one written whole


# ------------------------------------------------------------------- BatchNorm, batch of one


BN = {
    "data": {"source": "builtin:iris", "split": {"val": 0.2, "test": 0.2}},  # 90 train rows
    "model": {"hidden": [8], "norm": "batch"},
    "train": {"epochs": 2, "batch_size": 89},
    "doctor": {"enabled": False},
    "log": {"report": False},
}


def test_batch_norm_leaves_out_a_last_batch_of_one(runs_dir, caplog):
    with caplog.at_level("WARNING", logger="trainwell.train.data"):
        run = trainwell.fit(BN, name="bn", quiet=True)
    assert run.status == "completed"
    assert [r["step"] for r in run.history] == [1, 2]  # one batch of 89 per epoch
    assert "leave a last batch of one row" in caplog.text and "89 rows" in caplog.text


def test_batch_norm_with_batch_size_one_is_refused_before_the_run(runs_dir, capsys):
    (runs_dir.parent / "bn.toml").write_text(
        '[data]\nsource = "builtin:iris"\n[model]\nhidden = [8]\nnorm = "batch"\n'
        "[train]\nbatch_size = 1\n"
    )
    assert main(["train", "bn.toml", "--quiet"]) == 2
    line = one_error(capsys)
    assert "train.batch_size = 1" in line and "BatchNorm" in line, line
    assert list(runs_dir.iterdir()) == []
    with pytest.raises(ConfigError, match="train.batch_size = 1"):
        trainwell.fit({**BN, "train": {"batch_size": 1}}, name="b1", quiet=True)


def test_batches_of_a_model_without_batch_norm_keep_every_row():
    from torch import nn

    from trainwell.train.data import TensorBatches, as_batches, has_batch_norm

    X, y = torch.randn(9, 2), torch.arange(9)
    assert not has_batch_norm(nn.Linear(2, 2)) and has_batch_norm(nn.BatchNorm1d(2))
    keep = TensorBatches(X, y, 4, False, None, torch.device("cpu"))
    assert len(keep) == 3 and [len(b[0]) for b in keep] == [4, 4, 1]
    drop = TensorBatches(X, y, 4, False, None, torch.device("cpu"), drop_single=True)
    assert len(drop) == 2 and [len(b[0]) for b in drop] == [4, 4]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=4)
    streamed = as_batches(loader, 4, False, None, torch.device("cpu"), drop_single=True)
    assert streamed is not None and len(streamed) == 2
    assert [len(b[0]) for b in streamed] == [4, 4]
    even = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X[:8], y[:8]), batch_size=4)
    assert len(as_batches(even, 4, False, None, torch.device("cpu"), drop_single=True)) == 2

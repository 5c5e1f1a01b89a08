"""A config or a run directory runs no code unless the user trusts it (issue 12, item 10).

``model.arch = "python:module:factory"`` imports ``module`` and calls ``factory``. Run
directories are copied, shared and downloaded, and their ``config.toml`` is plain text anyone
can edit: without ``--trust-code`` (``trust_code=True`` in Python) nothing is imported, and the
refusal names ``model.arch``, its value and the opt-in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import trainwell
from trainwell.cli import main
from trainwell.errors import ConfigError
from trainwell.nn import ModelConfig, build_model
from trainwell.nn.build import code_trusted, require_trust, trusting_code

# a module whose import leaves a mark: importing it is running it
MARKED = """\
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("the module ran")

from torch import nn


def make(input_shape, n_outputs, width=6):
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, n_outputs))
"""

CONFIG = """\
name = "coded"
[data]
source = "builtin:iris"
[model]
arch = "python:marked_nets:make"
[train]
epochs = 1
[doctor]
enabled = false
[log]
report = false
"""


def refusal_of(err: str, arch: str) -> str:
    """The one ``error:`` line of a refused command, checked for what it must say."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert f"model.arch = {arch!r}" in lines[0] and "--trust-code" in lines[0], lines[0]
    assert "trust_code=True" in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def coded_run(tmp_path_factory) -> Path:
    """A finished run whose model comes from ``marked_nets.make``, trained with consent."""
    root = tmp_path_factory.mktemp("coded")
    (root / "marked_nets.py").write_text(MARKED)
    (root / "c.toml").write_text(CONFIG)
    (root / "new.csv").write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
        "5.1,3.5,1.4,0.2\n"
    )
    cwd = os.getcwd()
    os.chdir(root)
    try:
        run = trainwell.fit(root / "c.toml", quiet=True, trust_code=True)
    finally:
        os.chdir(cwd)
        sys.modules.pop("marked_nets", None)
        if str(root) in sys.path:
            sys.path.remove(str(root))
    (root / "IMPORTED").unlink()
    return root / run.run_dir  # runs_dir is relative to the folder it ran in


@pytest.fixture
def elsewhere(coded_run, tmp_path, monkeypatch) -> Path:
    """The coded run and its module copied to a fresh folder, the cwd: the module is found
    there if anything imports it."""
    shutil.copytree(coded_run, tmp_path / "runs" / "coded")
    shutil.copy(coded_run.parent.parent / "marked_nets.py", tmp_path)
    shutil.copy(coded_run.parent.parent / "new.csv", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    sys.modules.pop("marked_nets", None)


def listing(folder: Path) -> list[str]:
    """The paths under ``folder`` (a run's ``.lock`` aside: it names its last holder)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".lock")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainwell", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_predict_on_an_edited_run_runs_nothing_without_consent(elsewhere):
    """The issue's case: a run's config.toml edited to ``python:os:system`` ran a shell command
    on ``trainwell predict``; a module that marks its import shows that nothing is imported."""
    before = listing(elsewhere)
    out = _cli(["predict", "runs/coded", "new.csv", "--out", "p.csv"], elsewhere)
    assert out.returncode == 2
    refusal_of(out.stderr, "python:marked_nets:make")
    assert listing(elsewhere) == before  # no IMPORTED, no p.csv

    config = elsewhere / "runs" / "coded" / "config.toml"
    config.write_text(config.read_text().replace("python:marked_nets:make", "python:os:system"))
    out = _cli(["predict", "runs/coded", "new.csv", "--out", "p.csv"], elsewhere)
    assert out.returncode == 2 and out.stdout == ""
    line = refusal_of(out.stderr, "python:os:system")
    assert "Python module 'os'" in line
    assert listing(elsewhere) == before


def test_predict_with_consent_runs_the_module(elsewhere):
    out = _cli(["predict", "runs/coded", "new.csv", "--out", "p.csv", "--trust-code"],
               elsewhere)
    assert out.returncode == 0, out.stderr
    assert (elsewhere / "IMPORTED").is_file() and (elsewhere / "p.csv").is_file()


def test_load_refuses_unless_trusted(elsewhere, monkeypatch):
    with pytest.raises(ConfigError) as refused:
        trainwell.load("runs/coded")
    refusal_of(f"error: {refused.value}", "python:marked_nets:make")
    assert "marked_nets" not in sys.modules and not (elsewhere / "IMPORTED").exists()

    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a))
    config = elsewhere / "runs" / "coded" / "config.toml"
    config.write_text(config.read_text().replace("python:marked_nets:make", "python:os:system"))
    with pytest.raises(ConfigError, match=r"model.arch = 'python:os:system'"):
        trainwell.load("runs/coded")
    assert calls == []

    config.write_text(config.read_text().replace("python:os:system", "python:marked_nets:make"))
    predictor = trainwell.load("runs/coded", trust_code=True)
    assert (elsewhere / "IMPORTED").is_file()
    assert predictor.predict(elsewhere / "new.csv").shape == (1,)


def test_train_from_a_config_that_names_code(elsewhere, capsys):
    """Refused before any data is read or any run directory is made; with consent, trains."""
    (elsewhere / "c.toml").write_text(CONFIG.replace('name = "coded"', 'name = "again"'))
    assert main(["train", "c.toml", "--quiet"]) == 2
    refusal_of(capsys.readouterr().err, "python:marked_nets:make")
    assert not (elsewhere / "runs" / "again").exists() and not (elsewhere / "IMPORTED").exists()
    with pytest.raises(ConfigError, match="trust_code=True"):
        trainwell.fit(elsewhere / "c.toml", quiet=True)
    assert main(["train", "c.toml", "--quiet", "--trust-code"]) == 0
    assert (elsewhere / "runs" / "again" / "model.safetensors").is_file()
    assert (elsewhere / "IMPORTED").is_file()


def test_resume_of_a_run_that_names_code(elsewhere, capsys):
    meta = elsewhere / "runs" / "coded" / "meta.json"
    meta.write_text(meta.read_text().replace('"completed"', '"running"'))
    before = listing(elsewhere)
    assert main(["train", "--resume", "runs/coded", "--quiet"]) == 2
    refusal_of(capsys.readouterr().err, "python:marked_nets:make")
    assert listing(elsewhere) == before


@pytest.mark.parametrize(
    "command",
    [["doctor", "c.toml"], ["model", "summary", "c.toml"], ["tune", "c.toml"]],
    ids=["doctor", "model-summary", "tune"],
)
def test_other_commands_that_build_the_model(elsewhere, capsys, command):
    (elsewhere / "c.toml").write_text(
        CONFIG + '[tune]\ntrials = 1\nspace = { "train.optimizer.lr" = "loguniform(1e-3, 1e-2)" }\n'
    )
    before = listing(elsewhere)
    assert main(command) == 2
    refusal_of(capsys.readouterr().err, "python:marked_nets:make")
    assert listing(elsewhere) == before


def test_check_says_that_the_config_imports_code(tmp_path, capsys):
    (tmp_path / "c.toml").write_text(CONFIG)
    assert main(["check", str(tmp_path / "c.toml")]) == 0
    out = capsys.readouterr().out
    assert "config is valid" in out
    assert "model.arch = 'python:marked_nets:make' imports and runs the Python module " in out
    assert "--trust-code" in out
    (tmp_path / "plain.toml").write_text('[data]\nsource = "builtin:iris"\n')
    assert main(["check", str(tmp_path / "plain.toml")]) == 0
    assert "imports" not in capsys.readouterr().out


def test_trusting_code_is_scoped():
    assert not code_trusted()
    with trusting_code():
        assert code_trusted()
        with trusting_code(False):  # a caller's False keeps an outer consent
            assert code_trusted()
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(code_trusted()))
        thread.start()
        thread.join()
        assert seen == [False]  # consent is not shared with other threads
    assert not code_trusted()
    require_trust("mlp")  # a registered architecture needs no consent
    require_trust("python:m:f", trust_code=True)
    with pytest.raises(ConfigError, match=r"model.arch = 'python:m:f'.*--trust-code"):
        require_trust("python:m:f")


def test_build_model_imports_nothing_without_consent(tmp_path, monkeypatch):
    (tmp_path / "marked_build.py").write_text(MARKED.replace("IMPORTED", "BUILT"))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = ModelConfig(arch="python:marked_build:make")
    with pytest.raises(ConfigError, match="python:marked_build:make"):
        build_model(cfg, (4,), 3, "multiclass")
    assert "marked_build" not in sys.modules and not (tmp_path / "BUILT").exists()
    try:
        model = build_model(cfg, (4,), 3, "multiclass", trust_code=True)
    finally:
        sys.modules.pop("marked_build", None)
    assert (tmp_path / "BUILT").is_file() and model[0].in_features == 4

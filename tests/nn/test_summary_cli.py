"""``model_summary`` rows and ``trainwell model summary CONFIG`` on real bundled data."""

from __future__ import annotations

import pytest
import torch

from trainwell.cli import main
from trainwell.nn import ModelConfig, build_model, format_summary, model_summary


def test_summary_rows_shapes_params_and_init():
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="cnn", channels=[4], hidden=[8]), (1, 8, 8), 10, "multiclass"
    )
    rows = model_summary(model, (1, 8, 8))
    by_name = {r["layer"]: r for r in rows}
    assert by_name["conv1"]["output_shape"] == (4, 8, 8) and by_name["conv1"]["params"] == 4 * 9 + 4
    assert by_name["conv1_pool"]["output_shape"] == (4, 4, 4)
    assert by_name["flatten"]["output_shape"] == (64,)
    assert by_name["head"]["output_shape"] == (10,) and by_name["head"]["params"] == 8 * 10 + 10
    assert by_name["conv1"]["init"].startswith("kaiming_normal(fan_in, relu)")
    assert by_name["head"]["init"].startswith("lecun_normal std=")
    text = format_summary(rows)
    assert text.splitlines()[0].split() == ["layer", "type", "output", "shape", "params", "init"]
    assert text.endswith(f"total parameters: {sum(p.numel() for p in model.parameters()):,}")
    assert model.training  # the summary leaves the mode as it found it


def test_cli_model_summary_on_digits_images(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        '[data]\nsource = "builtin:digits_images"\npreprocess = []\n'
        '[model]\narch = "cnn"\nchannels = [8, 16]\nhidden = [32]\nnorm = "batch"\ninit = "lsuv"\n'
    )
    assert main(["model", "summary", str(cfg), "--set", "model.activation=tanh"]) == 0
    out = capsys.readouterr().out
    assert "model cnn for multiclass: input (1, 8, 8), 10 output(s)" in out
    assert "conv2_pool" in out and "16x2x2" in out
    assert "lsuv (orthonormal" in out and "Tanh" in out
    n = (1 * 8 * 9) + 16 + (8 * 16 * 9) + 32 + (64 * 32) + 64 + (32 * 10 + 10)
    assert f"total parameters: {n:,}" in out


def test_cli_model_summary_refuses_impossible_spec(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        '[data]\nsource = "builtin:digits_images"\n[model]\narch = "cnn"\nchannels = [8, 8, 8, 8]\n'
    )
    assert main(["model", "summary", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "error: model.pool: the max pool 2x2 after conv block 4 gets a 1x1 input" in err


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.norm=bn", "model.norm: unknown norm 'bn'"),
        ("model.activation.k=1", "model.activation"),
    ],
)
def test_cli_model_summary_bad_config(tmp_path, capsys, override, message):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('[data]\nsource = "builtin:iris"\n[model]\nactivation = "maxout"\n')
    assert main(["model", "summary", str(cfg), "--set", override]) == 2
    assert message in capsys.readouterr().err


def test_docs_auto_table_matches_policy():
    from pathlib import Path

    from trainwell.nn import AUTO_TABLE

    docs = (Path(__file__).parents[2] / "docs" / "models.md").read_text(encoding="utf-8")
    section = docs.split('### `init = "auto"`')[1].split("##")[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if (
            len(cells) == 2
            and cells[1]
            and not cells[1].startswith("-")
            and cells[0] != "activation after the layer"
        ):
            for act in cells[0].split(","):
                documented[act.strip().split(" ")[0]] = cells[1].split(" ")[0]
    documented.pop("none", None)
    assert documented == {act: scheme for act, (scheme, _) in AUTO_TABLE.items()}


def test_cli_model_summary_rnn_on_images_and_on_npz_sequences(tmp_path, capsys):
    import numpy as np

    cfg = tmp_path / "rnn.toml"
    cfg.write_text('[data]\nsource = "builtin:digits_images"\n'
                   '[model]\narch = "rnn"\ncell = "rnn"\nhidden_size = 16\n')
    assert main(["model", "summary", str(cfg)]) == 0
    out = capsys.readouterr().out
    # 8 rows of 8 pixels: 8 steps of 8 features, vanilla tanh rnn, 10 logits
    assert "model rnn for multiclass: input (1, 8, 8), 10 output(s)" in out
    assert "RNN" in out and "8x16" in out and "weight_hh: orthogonal" in out
    assert f"total parameters: {16 * 8 + 16 * 16 + 32 + 16 * 10 + 10:,}" in out
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seq.npz", X=rng.normal(size=(60, 7, 3)), y=rng.normal(size=(60, 2)))
    cfg.write_text('[data]\nsource = "npz:seq.npz"\n[model]\narch = "rnn"\ncell = "lstm"\n'
                   'hidden_size = 4\n')
    assert main(["model", "summary", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "model rnn for regression: input (1, 7, 3), 2 output(s)" in out
    assert f"total parameters: {4 * (4 * 3 + 4 * 4 + 8) + 4 * 2 + 2:,}" in out


def test_cli_model_summary_python_factory_beside_the_config(tmp_path, monkeypatch, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "my_cli_nets.py").write_text(
        "from torch import nn\n\n"
        "def make(input_shape, n_outputs, width=4):\n"
        "    return nn.Sequential(nn.Linear(input_shape[0], width), nn.Tanh(),\n"
        "                         nn.Linear(width, n_outputs))\n"
    )
    (exp / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[model]\n'
                                'arch = "python:my_cli_nets:make"\nparams = { width = 5 }\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the config's folder: found beside the config
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    assert main(["model", "summary", str(exp / "c.toml"), "--trust-code"]) == 0
    out = capsys.readouterr().out
    assert "model python:my_cli_nets:make for multiclass: input (4,), 3 output(s)" in out
    assert "factory" in out and f"total parameters: {4 * 5 + 5 + 5 * 3 + 3}" in out
    (exp / "c.toml").write_text('[data]\nsource = "builtin:iris"\n[model]\n'
                                'arch = "python:no_such_user_module:make"\n')
    assert main(["model", "summary", str(exp / "c.toml"), "--trust-code"]) == 2
    err = capsys.readouterr().err
    assert "cannot import module 'no_such_user_module'" in err and "Traceback" not in err

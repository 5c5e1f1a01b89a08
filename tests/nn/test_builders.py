"""Builders give the expected parameter counts and output shapes; bad specs fail with their
message."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from trainwell.config import load_config
from trainwell.errors import ConfigError, ModelSpecError
from trainwell.nn import ModelConfig, build_model
from trainwell.nn.build import trusting_code


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def trusted():
    """The test's own factory modules may run (``python:module:factory`` is opt-in)."""
    with trusting_code():
        yield


def build(input_shape, n_out=3, task="multiclass", **fields):
    torch.manual_seed(0)
    return build_model(ModelConfig(**fields), input_shape, n_out, task)


def test_mlp_counts_and_shape():
    m = build((10,), hidden=[32, 16])
    assert n_params(m) == (10 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3)
    assert m(torch.randn(7, 10)).shape == (7, 3)
    # batch norm before the activation: the linear bias is redundant and dropped; BN adds gamma and
    # beta
    bn = build((10,), hidden=[32, 16], norm="batch")
    assert n_params(bn) == 10 * 32 + 2 * 32 + 32 * 16 + 2 * 16 + 16 * 3 + 3
    assert [type(x).__name__ for x in bn][:3] == ["Linear", "BatchNorm1d", "ReLU"]
    after = build((10,), hidden=[32], norm="batch", norm_position="after", dropout=0.2)
    assert [type(x).__name__ for x in after] == [
        "Linear",
        "ReLU",
        "BatchNorm1d",
        "Dropout",
        "Linear",
    ]
    # images are flattened
    assert build((1, 4, 4), hidden=[8])(torch.randn(2, 1, 4, 4)).shape == (2, 3)


def test_mlp_maxout_dropout_kinds():
    m = build((10,), hidden=[8], activation={"name": "maxout", "k": 3})
    assert n_params(m) == (10 * 24 + 24) + (8 * 3 + 3)  # k affine pieces per unit
    assert m(torch.randn(4, 10)).shape == (4, 3)
    selu = build((10,), hidden=[8], activation="selu", dropout=0.1)
    assert any(isinstance(x, nn.AlphaDropout) for x in selu)
    assert selu[0].init_scheme.startswith("lecun_normal")
    dc = build((10,), hidden=[8], dropout=0.3, dropout_kind="dropconnect")
    assert type(dc[0]).__name__ == "DropConnectLinear" and dc[0].p == 0.3
    assert not any(isinstance(x, nn.Dropout) for x in dc)


@pytest.mark.parametrize(
    "task, n_out, head", [("multiclass", 5, 5), ("binary", 1, 1), ("regression", 3, 3)]
)
def test_head_follows_the_task(task, n_out, head):
    assert build((6,), n_out=n_out, task=task, hidden=[4])(torch.randn(2, 6)).shape == (2, head)


def test_cnn_with_stride_avg_pool_and_per_channel_prelu():
    m = build((3, 12, 12), arch="cnn", channels=[5, 6], kernel_size=3, stride=2, padding=1,
              pool="avg", hidden=[4], activation={"name": "prelu", "per_channel": True})
    assert m.conv1_act.weight.numel() == 5 and m.conv2_act.weight.numel() == 6
    assert isinstance(m.conv1_pool, nn.AvgPool2d)
    x = torch.randn(2, 3, 12, 12)
    h = m.conv1_pool(m.conv1_act(m.conv1(x)))
    assert h.shape == (2, 5, 3, 3)  # floor((12 + 2 - 3) / 2) + 1 = 6, then 6 // 2 = 3
    assert m.conv2_pool(m.conv2(h)).shape == (2, 6, 1, 1)  # 3 -> 2 -> 1
    assert m(x).shape == (2, 3)
    with pytest.raises(ModelSpecError, match=r"conv block 2 \(conv2d 3x3, stride 2, padding 0\) "
                                             r"gets a 2x2 input and would output 0x0"):
        build((3, 12, 12), arch="cnn", channels=[5, 6], stride=2, padding=0, pool="avg")
    conv = (3 * 5 * 9 + 5) + 5 + (5 * 6 * 9 + 6) + 6
    assert n_params(m) == conv + (6 * 1 * 1 * 4 + 4) + 4 + (4 * 3 + 3)  # one slope per fc1 unit


def test_cnn_counts_and_shape():
    m = build((1, 8, 8), n_out=10, arch="cnn", channels=[4, 8], hidden=[16])
    conv = (1 * 4 * 9 + 4) + (4 * 8 * 9 + 8)
    assert n_params(m) == conv + (8 * 2 * 2 * 16 + 16) + (16 * 10 + 10)  # 8x8 -> 4x4 -> 2x2
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    gap = build((1, 8, 8), n_out=10, arch="cnn", channels=[4, 8], hidden=[16], global_pool=True)
    assert n_params(gap) == conv + (8 * 16 + 16) + (16 * 10 + 10)
    frac = build((3, 16, 16), arch="cnn", channels=[4, 4], pool="fractional_max", hidden=[])
    # each fractional pool shrinks by sqrt(2): 16 -> int(16 / sqrt 2) = 11 -> 7
    assert n_params(frac) == (3 * 4 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 7 * 7 * 3 + 3)
    assert frac(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_resnet_counts_shape_and_identity_start():
    m = build((3, 8, 8), arch="resnet", widths=[4, 8], blocks=[1, 1], norm="batch")
    stem = 3 * 4 * 9 + 2 * 4
    block0 = 4 * 4 * 9 + 8 + 4 * 4 * 9 + 8
    block1 = 4 * 8 * 9 + 16 + 8 * 8 * 9 + 16 + (4 * 8 + 16)  # with the 1x1 projection shortcut
    assert n_params(m) == stem + block0 + block1 + (8 * 3 + 3)
    assert m(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    assert m.stages[0][0].norm2.weight.abs().sum() == 0  # zero-init of each branch's last layer
    sd = build((3, 8, 8), arch="resnet", widths=[4, 8], blocks=[2, 2], stochastic_depth=0.5)
    probs = [b.drop_path.p for stage in sd.stages for b in stage]
    assert probs == pytest.approx([0.125, 0.25, 0.375, 0.5])  # linear decay rule, Huang et al.


@pytest.mark.parametrize(
    "cell, bidirectional, expected",
    [
        ("rnn", False, (8 * 5 + 8 * 8 + 16) + (8 * 2 + 2)),
        ("gru", False, 3 * (8 * 5 + 8 * 8 + 16) + (8 * 2 + 2)),
        ("lstm", False, 4 * (8 * 5 + 8 * 8 + 16) + (8 * 2 + 2)),
        ("lstm", True, 2 * 4 * (8 * 5 + 8 * 8 + 16) + (16 * 2 + 2)),
    ],
)
def test_rnn_counts_and_shape(cell, bidirectional, expected):
    m = build((7, 5), n_out=2, arch="rnn", cell=cell, hidden_size=8, bidirectional=bidirectional)
    assert n_params(m) == expected
    assert m(torch.randn(4, 7, 5)).shape == (4, 2)


def test_vanilla_rnn_is_lectures_tanh_recurrence():
    m = build((3, 2), n_out=1, task="regression", arch="rnn", cell="rnn", hidden_size=4)
    x = torch.randn(1, 3, 2)
    h = torch.zeros(4)
    r = m.rnn
    for t in range(3):  # h_t = tanh(W_hh h_{t-1} + W_xh x_t) (lecture 002)
        h = torch.tanh(r.weight_hh_l0 @ h + r.bias_hh_l0 + r.weight_ih_l0 @ x[0, t] + r.bias_ih_l0)
    torch.testing.assert_close(m(x)[0], m.head(h))


def test_python_factory(tmp_path, monkeypatch, trusted):
    (tmp_path / "my_nets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def make(input_shape, n_outputs, width=4):
                return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(),
                                     nn.Linear(width, n_outputs))

            def wrong_size(input_shape, n_outputs):
                return nn.Sequential(nn.Linear(input_shape[0] + 1, n_outputs))

            def not_a_module():
                return 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    m = build((6,), n_out=4, arch="python:my_nets:make", params={"width": 5})
    assert n_params(m) == 6 * 5 + 5 + 5 * 4 + 4 and m[0].init_scheme == "factory"
    k = build((6,), n_out=4, arch="python:my_nets:make", init="kaiming_normal")
    assert k[0].init_scheme.startswith("kaiming_normal")
    with pytest.raises(ModelSpecError, match=r"at layer '0' with input shape \(2, 6\)"):
        build((6,), arch="python:my_nets:wrong_size")
    with pytest.raises(ModelSpecError, match="returned int, not a torch.nn.Module"):
        build((6,), arch="python:my_nets:not_a_module")
    with pytest.raises(ModelSpecError, match="cannot import module 'no_such_mod'.*PYTHONPATH"):
        build((6,), arch="python:no_such_mod:f")
    (tmp_path / "broken_nets.py").write_text("import no_such_dependency\n")
    with pytest.raises(ModelSpecError, match="module 'broken_nets' failed to import: No module "
                                             "named 'no_such_dependency'"):
        build((6,), arch="python:broken_nets:f")
    (tmp_path / "syntax_nets.py").write_text("def f(:\n")
    with pytest.raises(ModelSpecError, match="module 'syntax_nets' failed to import: SyntaxError"):
        build((6,), arch="python:syntax_nets:f")
    with pytest.raises(ModelSpecError, match="has no callable 'missing'"):
        build((6,), arch="python:my_nets:missing")


# ---------------------------------------------------------------------------- bad specs


def test_conv_stack_that_shrinks_an_8x8_image_below_1x1_is_refused():
    with pytest.raises(
        ModelSpecError,
        match=r"model.pool: the max pool 2x2 after conv block 4 gets a 1x1 input and would "
        r"output 0x0",
    ):
        build((1, 8, 8), arch="cnn", channels=[4, 4, 4, 4])
    build((1, 8, 8), arch="cnn", channels=[4, 4, 4])  # one block fewer fits: 8 -> 4 -> 2 -> 1
    with pytest.raises(
        ModelSpecError,
        match=r"conv block 2 \(conv2d 5x5, stride 1, padding 0\) gets a 4x4 input and would "
        r"output 0x0",
    ):
        build((1, 8, 8), arch="cnn", channels=[4, 4], kernel_size=5, padding=0, pool="none")


def test_wrong_input_rank_task_and_outputs_are_refused():
    with pytest.raises(
        ModelSpecError,
        match=r"'cnn' needs an image \(C, H, W\) per sample; got input shape \(64,\); table "
        r"rows are \(n_features,\): use arch = \"mlp\", or an image source",
    ):
        build((64,), arch="cnn")
    with pytest.raises(
        ModelSpecError,
        match=r"'rnn' needs a sequence \(T, F\) \(or \(C, H, W\), read row by row\) per "
        r"sample; got input shape \(64,\)",
    ):
        build((64,), arch="rnn")
    with pytest.raises(
        ModelSpecError, match="task must be one of binary, multiclass, regression; got 'ranking'"
    ):
        build((4,), task="ranking")
    with pytest.raises(ModelSpecError, match="multiclass task needs n_outputs >= 2 classes; got 1"):
        build((4,), n_out=1)


@pytest.mark.parametrize(
    "model, message",
    [
        ({"norm": "batchh"}, "model.norm: unknown norm 'batchh'; did you mean 'batch'?"),
        (
            {"activation": {"name": "maxout", "k": 1}},
            "model.activation: maxout k (the number of affine pieces) must be an integer >= 2; "
            "got 1",
        ),
        (
            {"activation": "rleu"},
            "model.activation: unknown activation 'rleu'; did you mean 'relu'?",
        ),
        ({"init": "xavierr"}, "model.init: unknown init 'xavierr'; did you mean 'xavier'?"),
        ({"arch": "resnett"}, "model.arch: unknown model arch 'resnett'; did you mean 'resnet'?"),
        ({"arch": "python:nomodule"}, "model.arch: a python model is named python:module:factory"),
        ({"pool": "maxx"}, "model.pool: unknown pool 'maxx'; did you mean 'max'?"),
        (
            {"arch": "resnet", "widths": [8, 16]},
            "model.blocks: needs one entry per stage of model.widths (2)",
        ),
        ({"dropout": 1.0}, "model.dropout: Input should be less than 1"),
    ],
)
def test_bad_specs_fail_at_config_time_with_their_message(model, message):
    with pytest.raises(ConfigError) as info:
        load_config({"model": model})
    assert message in str(info.value)


def test_config_accepts_boundaries_and_tables():
    cfg = load_config(
        {"model": {"activation": {"name": "maxout", "k": 2}, "dropout": 0.0}}, ["model.norm=layer"]
    )
    assert cfg.model.norm == "layer"
    cfg = load_config(
        {"model": {"activation": "leaky_relu"}}, ["model.activation.negative_slope=0.1"]
    )
    assert cfg.model.activation == {"name": "leaky_relu", "negative_slope": 0.1}
    m = build_model(cfg.model, (5,), 2, "multiclass")
    assert m.fc1_act.negative_slope == 0.1


def test_rnn_reads_c_h_w_inputs_row_by_row():
    m = build((2, 5, 3), n_out=4, arch="rnn", cell="gru", hidden_size=6)
    assert m.rnn.input_size == 2 * 3  # C * W features per step
    x = torch.randn(3, 2, 5, 3)
    rows = x.permute(0, 2, 1, 3).reshape(3, 5, 6)  # step t = row t of every channel
    _, h = m.rnn(rows)
    torch.testing.assert_close(m(x), m.head(h[-1]))


def test_rnn_learns_sequence_regression_and_classification():
    """A GRU fitted on generated sequences: the running sum (regression, 2 targets) and its sign
    (classification) -- an MLP-free check that the builder's head reads the whole sequence."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 12, 2, generator=g)
    targets = torch.stack([x[:, :, 0].sum(1), x[:, :, 1].sum(1)], dim=1) / 12**0.5
    for task, n_out, y in [("regression", 2, targets), ("binary", 1, (targets[:, :1] > 0).float())]:
        torch.manual_seed(0)
        m = build((12, 2), n_out=n_out, task=task, arch="rnn", cell="gru", hidden_size=16)
        loss_fn = nn.MSELoss() if task == "regression" else nn.BCEWithLogitsLoss()
        opt = torch.optim.Adam(m.parameters(), lr=0.02)
        with torch.no_grad():
            start = loss_fn(m(x), y).item()
        for _ in range(150):
            opt.zero_grad()
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
        if task == "regression":  # predicting the mean leaves MSE 1 per target
            assert start > 0.5 and loss.item() < 0.1
        else:
            accuracy = ((m(x) > 0).float() == y).float().mean().item()
            assert accuracy > 0.93


def test_python_factory_found_in_the_current_folder(tmp_path, monkeypatch, trusted):
    import sys

    (tmp_path / "cwd_only_nets.py").write_text(
        "from torch import nn\n\ndef make(input_shape, n_outputs):\n"
        "    return nn.Linear(input_shape[0], n_outputs)\n"
    )
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.chdir(tmp_path)  # as `python -m` would, the current folder is searched last
    m = build((6,), n_out=4, arch="python:cwd_only_nets:make")
    assert isinstance(m, nn.Linear) and m.in_features == 6 and sys.path[-1] == str(tmp_path)
    with pytest.raises(ModelSpecError, match="cannot import module 'cwd_only_nets_missing'"):
        build((6,), arch="python:cwd_only_nets_missing:f")
    assert sys.path.count(str(tmp_path)) == 1

"""Under ``init = "auto"`` the output layer starts small, so the initial loss is the chance loss.

The output layer is the one whose output becomes the model's output, found by running the
example batch through the model: never the last layer declared in ``__init__``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.config import load_config
from trainwell.data import prepare
from trainwell.errors import ModelSpecError
from trainwell.nn import ModelConfig, build_model, init_model_
from trainwell.nn.init_schemes import HEAD_SCALE

KAIMING_400 = math.sqrt(2 / 400)  # a layer of fan_in 400 followed by a ReLU
HEAD_400 = HEAD_SCALE / math.sqrt(400)  # an output layer of fan_in 400: lecun x HEAD_SCALE
BATCH = torch.randn(8, 400, generator=torch.Generator().manual_seed(1))


def _std(layer: nn.Module) -> float:
    return layer.weight.std().item()


def test_auto_scales_only_the_output_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 300))
    init_model_(net, "auto", example_batch=BATCH)
    assert _std(net[0]) == pytest.approx(KAIMING_400, rel=0.03)
    assert _std(net[2]) == pytest.approx(HEAD_400, rel=0.03)
    assert "x0.1 (output layer)" in net[2].init_scheme
    torch.manual_seed(0)
    plain = init_model_(nn.Sequential(nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 300)),
                        "lecun_normal", example_batch=BATCH)
    assert _std(plain[2]) == pytest.approx(1 / math.sqrt(400), rel=0.03)


class HeadFirst(nn.Module):
    """Declares its head, then an activation, then the trunk: the reverse of the data flow."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(400, 300)
        self.act = nn.ReLU()
        self.trunk = nn.Linear(400, 400)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.trunk(x)))


def test_a_head_declared_first_is_found_by_the_data_flow():
    torch.manual_seed(0)
    model = init_model_(HeadFirst(), "auto", example_batch=BATCH)
    # the real head: lecun_normal (no activation after it) x HEAD_SCALE, bias 0
    assert _std(model.head) == pytest.approx(HEAD_400, rel=0.03)
    assert "(output layer)" in model.head.init_scheme
    assert torch.count_nonzero(model.head.bias) == 0
    # the trunk: untouched by the head scale, and Kaiming for the ReLU that runs after it
    assert _std(model.trunk) == pytest.approx(KAIMING_400, rel=0.03)
    assert "output layer" not in model.trunk.init_scheme
    assert model.trunk.init_scheme.startswith("kaiming_normal(fan_in, relu)")


class TwoHeads(nn.Module):
    """A shared trunk and two heads, returned as a tuple or a dict; heads declared first."""

    def __init__(self, as_dict: bool) -> None:
        super().__init__()
        self.classes = nn.Linear(400, 300)
        self.value = nn.Linear(400, 200)
        self.trunk = nn.Sequential(nn.Linear(400, 400), nn.ReLU())
        self.as_dict = as_dict

    def forward(self, x: torch.Tensor) -> object:
        h = self.trunk(x)
        logits, value = self.classes(h), 2.0 * self.value(h)  # post-processing after a head
        return {"logits": logits, "value": value} if self.as_dict else (logits, value)


@pytest.mark.parametrize("as_dict", [False, True])
def test_every_head_of_a_two_output_model_starts_small(as_dict):
    torch.manual_seed(0)
    model = init_model_(TwoHeads(as_dict), "auto", example_batch=BATCH)
    for head in (model.classes, model.value):
        assert _std(head) == pytest.approx(HEAD_400, rel=0.03)
        assert "(output layer)" in head.init_scheme
    assert _std(model.trunk[0]) == pytest.approx(KAIMING_400, rel=0.03)
    assert "output layer" not in model.trunk[0].init_scheme


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(800, 300)
        self.left = nn.Linear(400, 400)
        self.right = nn.Linear(400, 400)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(torch.cat([self.left(a), self.right(b)], dim=1)))


def test_a_model_with_several_inputs_takes_a_tuple_batch():
    torch.manual_seed(0)
    model = init_model_(TwoInputs(), "auto", example_batch=(BATCH, BATCH))
    assert "(output layer)" in model.head.init_scheme
    assert _std(model.head) == pytest.approx(HEAD_SCALE / math.sqrt(800), rel=0.03)
    for branch in (model.left, model.right):
        assert "output layer" not in branch.init_scheme


class RecurrentOut(nn.Module):
    """The last LSTM state is the output: the linear layer before the LSTM is no output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(400, 32)
        self.rnn = nn.LSTM(32, 3, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.inp(x))[0][:, -1]


def test_a_layer_behind_a_recurrent_output_is_not_an_output_layer():
    torch.manual_seed(0)
    model = init_model_(RecurrentOut(), "auto", example_batch=torch.randn(2, 5, 400))
    assert "output layer" not in model.inp.init_scheme
    assert _std(model.inp) == pytest.approx(1 / math.sqrt(400), rel=0.05)  # lecun_normal, not x0.1


def test_without_a_batch_the_last_declared_layer_stands_in_and_says_so():
    torch.manual_seed(0)
    net = init_model_(nn.Sequential(nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 300)), "auto")
    assert _std(net[2]) == pytest.approx(HEAD_400, rel=0.03)
    assert "output layer taken as the last declared: no example batch" in net[2].init_scheme
    # an input shape is enough to trace: a batch of zeros finds the real head
    head_first = init_model_(HeadFirst(), "auto", input_shape=(400,))
    assert "(output layer)" in head_first.head.init_scheme
    assert "output layer" not in head_first.trunk.init_scheme


def test_build_model_traces_a_batch_of_zeros_when_it_has_none():
    model = build_model(ModelConfig(hidden=[8]), (4,), 3, "multiclass")
    assert model[-1].init_scheme.endswith("x0.1 (output layer)")


class Noisy(nn.Module):
    """Draws random numbers in its forward pass, even in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * torch.randn_like(x)


def test_tracing_leaves_the_random_stream_alone():
    def weights(**batch):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(400, 40), Noisy(), nn.ReLU(), nn.Linear(40, 3))
        return [p.detach().clone() for p in init_model_(net, "auto", **batch).parameters()]

    for a, b in zip(weights(), weights(example_batch=BATCH), strict=True):
        torch.testing.assert_close(a, b)


def test_a_batch_that_does_not_fit_is_refused_by_name():
    with pytest.raises(ModelSpecError, match="init: the example batch does not run through"):
        init_model_(nn.Sequential(nn.Linear(4, 2)), "auto", example_batch=torch.zeros(3, 5))


def test_a_cnn_on_digits_starts_at_the_chance_loss():
    cfg = load_config({"data": {"source": "builtin:digits_images"}, "model": {"arch": "cnn"}})
    data = prepare(cfg.data, cfg.seed)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, data.task).eval()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(data.train.X[:512]), data.train.y[:512])
    assert loss.item() == pytest.approx(math.log(10), rel=0.05)

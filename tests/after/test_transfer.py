"""Transfer learning on any module: load_matching_, freeze_, the optimizer's groups, reading
checkpoints safely."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainwell.after import freeze_, load_matching_, read_weights, unfreeze_
from trainwell.after.transfer import TransferPlan, TransferReport
from trainwell.errors import ConfigError, RunError
from trainwell.train import Trainer
from trainwell.train.config import ScheduleConfig
from trainwell.train.optim import make_optimizer
from trainwell.train.schedules import LRSchedule


def net(width: int = 8, classes: int = 3, inputs: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes))


def test_matching_checkpoint_loads_every_tensor():
    torch.manual_seed(0)
    src, dst = net(), net()
    report = load_matching_(dst, src.state_dict())
    assert report.new == [] and report.skipped == {}
    assert report.loaded == list(dst.state_dict())
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    assert "11 tensors loaded, 0 new, 0 skipped" in report.summary()


def test_partial_checkpoint_loads_the_backbone_and_reports_the_new_head():
    torch.manual_seed(0)
    src, dst = net(classes=3), net(classes=5)
    head_before = dst[5].weight.detach().clone()
    report = load_matching_(dst, src.state_dict())
    assert report.new == ["5.weight", "5.bias"]
    assert report.skipped == {"5.weight": "shape (3, 8); the model's is (5, 8)",
                              "5.bias": "shape (3,); the model's is (5,)"}
    assert torch.equal(dst[0].weight, src[0].weight)
    assert torch.equal(dst[1].running_mean, src[1].running_mean)
    assert torch.equal(dst[5].weight, head_before)  # left at its own initialization
    text = report.summary()
    assert "9 tensors loaded, 2 new, 2 skipped" in text
    assert "new:    5" in text and "skipped 5.weight: shape (3, 8); the model's is (5, 8)" in text


def test_exclude_keeps_a_matching_head_new():
    torch.manual_seed(0)
    src, dst = net(), net()
    report = load_matching_(dst, src, exclude=["5.weight", "5.bias"])
    assert report.skipped == {"5.weight": "the model's new head", "5.bias": "the model's new head"}
    assert not torch.equal(dst[5].weight, src[5].weight)


def test_non_matching_checkpoint_is_refused_naming_the_mismatch():
    torch.manual_seed(0)
    with pytest.raises(RunError, match=r"nothing in the state dict fits the model: its '0.weight' "
                                       r"has shape \(8, 6\) where the model's is \(8, 4\)"):
        load_matching_(net(), net(inputs=6, classes=2, width=5).state_dict() | {
            "0.weight": torch.zeros(8, 6)})
    other = {"features.0.weight": torch.zeros(3, 3), "features.0.bias": torch.zeros(3)}
    with pytest.raises(RunError, match=r"none of its names \('features.0.weight', "
                                       r"'features.0.bias' \.\.\.\) is one of the model's "
                                       r"\('0.weight', '0.bias', '1.weight' \.\.\.\)"):
        load_matching_(net(), other)


def test_buffers_alone_are_not_a_transfer():
    """A BatchNorm step counter has the same shape in every model: it does not count."""
    src = {"1.num_batches_tracked": torch.tensor(5), "0.weight": torch.zeros(2, 2)}
    with pytest.raises(RunError, match="nothing in the state dict fits"):
        load_matching_(net(), src)


class Trap:
    """Unpickling this would run ``_spring``; reading weights must never get that far."""

    def __reduce__(self):
        return (_spring, ())


SPRUNG: list[bool] = []


def _spring():
    SPRUNG.append(True)
    return 0


def test_pickle_bearing_pt_is_refused_and_never_run(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"0.weight": torch.zeros(8, 4), "extra": Trap()}, path)
    with pytest.raises(RunError, match=r"model.pt holds Python objects beyond tensors \(it names "
                                       r"[\w.]*_spring\), which loading would have to run as code; "
                                       r"trainwell reads weights only and refused it") as info:
        load_matching_(net(), path)
    assert SPRUNG == []
    assert "\x1b" not in str(info.value)  # torch's coloured text is not passed on


def test_an_ensemble_or_study_directory_is_named_as_such(tmp_path):
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "ensemble.json").write_text("{}")
    with pytest.raises(RunError, match=r"ens is an ensemble directory, not a run; give one of "
                                       r"its members, e.g. .*members/0"):
        load_matching_(net(), ens)
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    with pytest.raises(RunError, match=r"study is a study directory, not a run"):
        load_matching_(net(), study)


def test_torch_state_dict_file_is_read(tmp_path):
    torch.manual_seed(0)
    src = net()
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": src.state_dict()}, path)
    weights = read_weights(path)
    assert set(weights.tensors) == set(src.state_dict())
    dst = net()
    assert load_matching_(dst, path).new == []
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(RunError, match="holds a list, not a state dict"):
        read_weights(tmp_path / "list.pt")


def test_missing_source_is_named(tmp_path):
    with pytest.raises(RunError, match=r"model.init_from: .*nowhere does not exist \(give a run "
                                       r"directory, a .safetensors or torch weights file, or "
                                       r"pretrained:<name>"):
        read_weights(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a run directory"):
        read_weights(tmp_path / "empty")
    with pytest.raises(ConfigError, match="unknown pretrained checkpoint 'mnist4'.*mnist04"):
        read_weights("pretrained:mnist4")


def _train(model: nn.Module, epochs: int = 3) -> Trainer:
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(96, 4, generator=g), torch.randint(0, 3, (96,), generator=g)
    return Trainer(model, epochs=epochs, batch_size=16, seed=0,
                   optimizer={"name": "adam", "lr": 0.05}).fit((X, y))


def test_frozen_parameters_and_batchnorm_statistics_are_unchanged_by_training():
    torch.manual_seed(0)
    model = net()
    with torch.no_grad():  # statistics that training batches would certainly move
        model[1].running_mean.fill_(3.0)
        model[1].running_var.fill_(7.0)
    assert freeze_(model, "3") == ["0", "1", "3"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _train(model)
    after = model.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
              "1.num_batches_tracked", "3.weight", "3.bias"):
        assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["5.weight"], before["5.weight"])  # the head trained
    unfreeze_(model)
    model.train()
    assert model[1].training and all(p.requires_grad for p in model.parameters())
    model(torch.randn(8, 4))
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])  # free again


def test_unfrozen_batchnorm_statistics_do_move():
    """The control of the test above: without freeze_, the same training moves them."""
    torch.manual_seed(0)
    model = net()
    before = model[1].running_mean.clone()
    _train(model, epochs=1)
    assert not torch.equal(model[1].running_mean, before)


def test_freeze_backbone_none_and_unknown_layer():
    model = net()
    assert freeze_(model, "backbone") == ["0", "1", "3"]
    assert [p.requires_grad for p in model[5].parameters()] == [True, True]
    assert freeze_(model, "none") == []
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match=r"model.freeze = 'conv9' names no layer of the model; "
                                          r"its layers, in order: 0, 1, 3, 5 \(or 'backbone', "
                                          r"'none'\)"):
        freeze_(model, "conv9")


def _plan(lr_mult: float, loaded: list[str]) -> TransferPlan:
    return TransferPlan("src", "finetune", "finetune", "new", "none", lr_mult, 0,
                        TransferReport("src", loaded=loaded))


@pytest.mark.parametrize("schedule", [
    ScheduleConfig(name="cosine", warmup=1), ScheduleConfig(name="step", milestones=[1]),
    ScheduleConfig(name="onecycle")])
def test_lr_mult_scales_the_pretrained_group_through_the_schedule(schedule):
    model = net()
    loaded = [k for k in model.state_dict() if not k.startswith("5.")]
    groups = _plan(0.1, loaded).param_groups(model, 0.01)
    assert [len(g["params"]) for g in groups] == [2, 6]
    opt = make_optimizer({"name": "sgd", "lr": 0.01}, groups)
    sched = LRSchedule(opt, schedule, steps_per_epoch=4, epochs=3)
    seen = []
    for _ in range(12):
        head, body = (g["lr"] for g in opt.param_groups)
        seen.append(head)
        assert body == pytest.approx(0.1 * head, rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
    if schedule.name == "cosine":  # warmup over the first epoch, then the closed form
        assert seen[0] == pytest.approx(0.01 / 4)
        assert seen[4] == pytest.approx(0.01)
        assert seen[8] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    if schedule.name == "step":
        assert seen[3] == pytest.approx(0.01) and seen[4] == pytest.approx(0.001)


def test_trainer_takes_the_groups_and_frozen_layers_stay_out():
    torch.manual_seed(0)
    model = net()
    freeze_(model, "backbone")
    loaded = [k for k in model.state_dict() if not k.startswith("5.")]
    opt = make_optimizer("adam", _plan(0.5, loaded).param_groups(model, 0.01))
    before = model[0].weight.clone()
    trainer = Trainer(model, optimizer=opt, epochs=1, batch_size=16, seed=0)
    g = torch.Generator().manual_seed(1)
    trainer.fit((torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)))
    assert torch.equal(model[0].weight, before)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.01, 0.005]


def test_a_new_head_starts_at_zero():
    from trainwell.after.transfer import zero_head_

    model = net()
    assert zero_head_(model) == "5"
    assert not model[5].weight.any() and not model[5].bias.any()
    assert model[3].weight.any()  # the rest as it was

"""TensorBoard beyond the epoch scalars: every step's loss, the doctor's layer statistics and the
HParams plugin's summaries, read back from the event files of a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwell.errors import ConfigError
from trainwell.report.tensorboard import final_metrics, hparam_values


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory) -> Path:
    from trainwell.api import fit

    root = tmp_path_factory.mktemp("tb-runs")
    cfg = {"data": {"source": "builtin:iris"}, "runs_dir": str(root),
           "train": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05}},
           "doctor": {"monitor": True, "monitor_every": 1},
           "log": {"tensorboard": True, "tensorboard_step_every": 1, "report": False}}
    return fit(cfg, name="tb", quiet=True).run_dir


def _accumulator(path: Path):  # noqa: ANN202 - tensorboard's own class
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 1})
    acc.Reload()
    return acc


def test_every_step_loss_averages_to_the_epoch_train_loss(tb_run):
    records = _jsonl(tb_run / "metrics.jsonl")
    events = _accumulator(tb_run / "tensorboard" / "steps").Scalars("loss/train_step")
    assert [e.step for e in events] == list(range(1, records[-1]["step"] + 1))
    n_train = json.loads((tb_run / "data.json").read_text())["splits"]["train"]
    first = 0
    for record in records:
        values = [e.value for e in events[first:record["step"]]]
        sizes = [16] * (len(values) - 1) + [n_train - 16 * (len(values) - 1)]
        assert 0 < sizes[-1] <= 16
        mean = sum(v * n for v, n in zip(values, sizes, strict=True)) / n_train
        assert mean == pytest.approx(record["train_loss"], rel=1e-5)
        first = record["step"]


def test_the_doctors_layer_statistics_are_scalars_per_layer(tb_run):
    acc = _accumulator(tb_run / "tensorboard")
    stats = _jsonl(tb_run / "stats.jsonl")
    layers = stats[-1]["layers"]
    assert len(layers) >= 2
    tags = set(acc.Tags()["scalars"])
    for layer, values in layers.items():
        for key in ("act_std", "grad_norm", "update_ratio"):
            if values.get(key) is None:
                continue
            events = acc.Scalars(f"layers.{key}/{layer}")
            assert [e.step for e in events] == [r["epoch"] for r in stats]
            assert [e.value for e in events] == pytest.approx(
                [r["layers"][layer][key] for r in stats], rel=1e-6)
    assert any(t.startswith("layers.dead_frac/") for t in tags)


def test_hparams_hold_the_config_and_the_final_metrics(tb_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _accumulator(tb_run / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    experiment = data["_hparams_/experiment"].experiment
    session = data["_hparams_/session_start_info"].session_start_info
    assert session.hparams["train.optimizer.name"].string_value == "sgd"
    assert session.hparams["train.optimizer.lr"].number_value == pytest.approx(0.05)
    assert session.hparams["train.epochs"].number_value == 3
    assert session.hparams["model.hidden"].string_value == "[256, 256]"
    assert {h.name for h in experiment.hparam_infos} == set(session.hparams)
    results = json.loads((tb_run / "results.json").read_text())
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"final/test_accuracy", "final/test_loss", "final/best_val_loss"} <= metric_tags
    for tag in metric_tags:
        key = tag.removeprefix("final/")
        expected = results["test"][key] if key.startswith("test_") else \
            results["best"][key.removeprefix("best_")]
        assert acc.Scalars(tag)[-1].value == pytest.approx(expected, rel=1e-6)
    assert data["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS


def test_step_losses_are_window_means_at_multiples_of_step_every(tmp_path):
    import torch

    from trainwell.report.tensorboard import TensorBoardLogger
    from trainwell.train.trainer import Trainer

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(70, 3, generator=gen)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    every, by4, default = (TensorBoardLogger(tmp_path / name, histograms=False, step_every=n)
                           for name, n in (("one", 1), ("four", 4), ("default", 10)))
    assert default.step_every == 10
    Trainer(torch.nn.Linear(3, 2), epochs=3, batch_size=10, seed=0,
            callbacks=[every, by4]).fit(data)  # 7 steps an epoch, 21 in all
    steps = [e.value for e in _accumulator(tmp_path / "one/tensorboard/steps")
             .Scalars("loss/train_step")]
    events = _accumulator(tmp_path / "four/tensorboard/steps").Scalars("loss/train_step")
    assert [e.step for e in events] == [4, 8, 12, 16, 20, 21]
    ends = [0, 4, 8, 12, 16, 20, 21]
    expected = [sum(steps[a:b]) / (b - a) for a, b in zip(ends, ends[1:], strict=False)]
    assert [e.value for e in events] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="step_every must be a whole number >= 0"):
        TensorBoardLogger(tmp_path, step_every=-1)


def test_a_diverged_run_ends_as_a_failure_in_hparams(tmp_path):
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    from trainwell.report.tensorboard import write_hparams

    for status in ("completed", "diverged"):
        write_hparams(tmp_path / status, {"seed": 1}, {"test": {}, "best": {"val_loss": 2.0}},
                      status)
        acc = _accumulator(tmp_path / status)
        raw = acc.PluginTagToContent("hparams")["_hparams_/session_end_info"]
        end = plugin_data_pb2.HParamsPluginData.FromString(raw).session_end_info
        assert end.status == (api_pb2.STATUS_SUCCESS if status == "completed"
                              else api_pb2.STATUS_FAILURE)
        assert acc.Scalars("final/best_val_loss")[0].value == 2.0


def test_hparam_values_and_final_metrics_by_hand():
    config = {"seed": 3, "train": {"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]},
                                   "amp": False}, "data": {"source": "builtin:iris"}}
    assert hparam_values(config) == {"seed": 3, "train.optimizer.lr": 0.1,
                                     "train.optimizer.betas": "[0.9, 0.99]", "train.amp": False,
                                     "data.source": "builtin:iris"}
    results = {"test": {"test_loss": 0.5, "test_accuracy": 0.75},
               "best": {"epoch": 4, "step": 40, "val_loss": 0.4, "lr": 0.1}}
    assert final_metrics(results) == {"final/test_loss": 0.5, "final/test_accuracy": 0.75,
                                      "final/best_val_loss": 0.4, "final/best_lr": 0.1}

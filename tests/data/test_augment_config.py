"""The ``[augment]`` section: validation at load, refusals against the data, tables, geometry."""

from __future__ import annotations

import pytest
import tomli_w
import torch

import trainwell
from trainwell.cli import main
from trainwell.config import Config, load_config
from trainwell.data.augment.config import AugmentConfig, trained_geometry
from trainwell.errors import ConfigError


def _check(tmp_path, capsys, cfg, command="check"):
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(cfg))
    code = main([command, str(path), "--quiet"] if command == "train" else [command, str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("augment,expected", [
    ({"hflp": {}}, "augment.hflp: unknown key. did you mean 'augment.hflip'?"),
    ({"crop": {"pad": 2}}, "augment.crop.pad: unknown key"),
    ({"crop": {"padding": 0}}, "augment.crop.padding"),
    ({"hflip": {"p": 1.5}}, "augment.hflip.p"),
    ({"affine": {}}, "affine changes nothing"),
    ({"affine": {"scale": [1.2, 0.8]}}, "scale must be [low, high] with low <= high"),
    ({"color": {}}, "color changes nothing"),
    ({"resized_crop": {"scale": [0.0, 1.0]}}, "scale must be above 0"),
    ({"erasing": {"value": "noise"}}, 'value must be a number or "random"'),
    ({"mixup": {"alpha": 0}}, "augment.mixup.alpha"),
])
def test_bad_fields_are_refused_at_load_naming_the_field(tmp_path, capsys, augment, expected):
    code, err = _check(tmp_path, capsys, {"augment": augment})
    assert code == 2 and expected in err, err


@pytest.mark.parametrize("cfg,expected", [
    ({"data": {"task": "regression"}, "augment": {"mixup": {}}},
     "augment.mixup on a regression task: set augment.mixup.regression = true"),
    ({"data": {"task": "regression"}, "augment": {"cutmix": {}}},
     "augment.cutmix mixes targets by the pasted area"),
    ({"train": {"loss": "hinge"}, "augment": {"mixup": {}}},
     "train.loss 'hinge' does not take"),
    ({"heads": {"a": {"target": "x"}}, "augment": {"cutmix": {}}},
     "[heads] does not support"),
    ({"train": {"loss": "huber"}, "augment": {"mixup": {}}},
     "augment.mixup on a regression task: set augment.mixup.regression = true"),
])
def test_mixing_that_has_no_meaning_is_refused_at_load(cfg, expected):
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert expected in str(info.value)


def test_mixup_on_regression_says_how_with_regression_true():
    cfg = load_config({"data": {"task": "regression"},
                       "augment": {"mixup": {"regression": True}}})
    assert cfg.augment.mixup is not None and cfg.augment.mixup.regression
    with_l1 = load_config({"train": {"loss": "l1"}, "augment": {"mixup": {"regression": True}}})
    assert with_l1.train.loss.name == "l1"


@pytest.mark.parametrize("source,augment,expected", [
    ("builtin:iris", {"hflip": {}}, "augment.hflip is an image operation, but the data is a "
                                    "table of 4 features"),
    ("builtin:digits_images", {"cutout": {"size": 9}},
     "augment.cutout.size = 9 is larger than the image (8x8)"),
    ("builtin:digits_images", {"crop": {"padding": 8}},
     "augment.crop.padding = 8 is not smaller than the image (8x8)"),
    ("builtin:digits_images", {"pca_color": {}},
     "augment.pca_color needs 3-channel (RGB) images; these have 1 channel(s)"),
    ("builtin:digits_images", {"color": {"saturation": 0.2}},
     "augment.color.saturation needs 3-channel (RGB) images"),
    ("builtin:diabetes", {"mixup": {}}, "augment.mixup on a regression task"),
])
def test_operations_that_do_not_fit_the_data_are_refused_before_a_run_directory(
        tmp_path, capsys, runs_dir, source, augment, expected):
    code, err = _check(tmp_path, capsys, {"data": {"source": source}, "augment": augment},
                       command="train")
    assert code == 2, err
    assert err.startswith("error: ") and expected in err, err
    assert not any(runs_dir.iterdir())  # nothing half-written


def test_tables_train_with_noise_and_mixup(runs_dir):
    run = trainwell.fit({
        "data": {"source": "builtin:breast_cancer"},
        "model": {"hidden": [16]},
        "train": {"epochs": 2},
        "log": {"report": False},
        "augment": {"noise": {"std": 0.1}, "mixup": {"alpha": 0.4}},
    }, quiet=True)
    assert run.status == "completed" and run.prepared.task == "binary"
    assert run.metrics["test_accuracy"] > 0.5
    assert not (run.run_dir / "augment_grid.png").exists()  # a table has no image grid


def test_regression_mixup_mixes_the_target_values(runs_dir):
    from trainwell.data.augment.augmenter import Augmenter, augment_generator

    run = trainwell.fit({
        "data": {"source": "builtin:diabetes"},
        "model": {"hidden": [8]},
        "train": {"epochs": 1},
        "log": {"report": False},
        "augment": {"mixup": {"regression": True}},
    }, quiet=True)
    assert run.status == "completed"
    aug = Augmenter.load(run.config.augment, run.run_dir)
    x, y = torch.eye(6), torch.arange(6.0).view(6, 1)
    xm, ym = aug(x, y, augment_generator(0, 1, 0))
    partner = (xm - torch.diag(torch.diagonal(xm))).argmax(1)
    lam = torch.diagonal(xm)
    torch.testing.assert_close(ym[:, 0], lam * y[:, 0] + (1 - lam) * y[partner, 0])


def test_the_section_round_trips_through_the_resolved_config():
    cfg = load_config({"augment": {"crop": {"padding": 2}, "mixup": {}}})
    again = load_config(cfg.to_dict())
    assert again.augment == cfg.augment
    assert "[augment.crop]" in cfg.to_toml()
    assert not Config().augment.enabled


def test_trained_geometry_says_what_test_time_views_may_use():
    cfg = AugmentConfig.model_validate({"hflip": {}, "crop": {"padding": 2},
                                        "affine": {"translate": 0.25, "rotate": 5}})
    g = trained_geometry(cfg, (1, 28, 28))
    assert g == {"hflip": True, "vflip": False, "max_shift": 7, "max_shift_fraction": 0.25,
                 "rotate": 5.0, "scale": [1.0, 1.0], "shear": 0.0, "resized_crop": False,
                 "input_shape": [1, 28, 28]}
    none = trained_geometry(AugmentConfig(), (3, 32, 32))
    assert none["max_shift"] == 0 and not none["hflip"] and none["max_shift_fraction"] == 0.0
    off = trained_geometry(AugmentConfig.model_validate({"hflip": {"p": 0.0}}))
    assert off["hflip"] is False and off["input_shape"] is None
    # 0.29 * 100 is 28.999... in floating point: still 29 pixels
    wide = trained_geometry(AugmentConfig.model_validate({"affine": {"translate": 0.29}}),
                            (1, 100, 100))
    assert wide["max_shift"] == 29

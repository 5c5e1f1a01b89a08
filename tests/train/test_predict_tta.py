"""``[tta]`` in a run and ``trainwell predict --tta / --mc-samples`` end to end, on a tiny CNN
trained on the bundled 8x8 digit images, and the bad inputs each refused with one line."""

from __future__ import annotations

import json
import shutil
import tomllib

import numpy as np
import pandas as pd
import pytest
import tomli_w
import torch

from trainwell.api import fit, load
from trainwell.cli import main
from trainwell.errors import DataError

pytestmark = pytest.mark.slow  # two tiny training runs

CNN = {
    "seed": 0,
    "data": {"source": "builtin:digits_images",
             "split": {"val": 0.15, "test": 0.15, "stratify": True}},
    "model": {"arch": "cnn", "channels": [6], "hidden": [24], "dropout": 0.3, "norm": "batch"},
    "train": {"epochs": 1, "batch_size": 64},
    "augment": {"crop": {"padding": 1}},  # shifts of up to one pixel; no flip
    "tta": {"enabled": True, "mc_samples": 3},
}
TABLE = {"data": {"source": "builtin:iris"}, "model": {"hidden": [8]},
         "train": {"epochs": 1}, "log": {"report": False}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tta")
    image = fit({**CNN, "runs_dir": str(root / "runs")}, name="img", quiet=True)
    table = fit({**TABLE, "runs_dir": str(root / "runs")}, name="tab", quiet=True)
    return root, image, table


def test_results_and_report_show_test_metrics_with_and_without_tta(runs):
    _, image, _ = runs
    res = json.loads((image.run_dir / "results.json").read_text())
    assert set(res["test_tta"]) == set(res["test"]) == set(res["test_mc"])
    # crops with one pixel of padding were trained, flips were not: no flipped view
    assert res["tta"]["views"] == ["identity", "shift(+1,+0)", "shift(-1,+0)", "shift(+0,+1)",
                                   "shift(+0,-1)"]
    assert res["tta"]["beta"] == 0.25
    assert res["test_tta"]["test_loss"] != res["test"]["test_loss"]
    assert res["tta"]["mc_samples"] == 3 and res["tta"]["stochastic_layers"] == "dropout"
    assert res["test_mc"]["test_loss"] != res["test"]["test_loss"]
    html = (image.run_dir / "report.html").read_text()
    assert "Test split with test-time augmentation" in html
    assert "Test split with Monte Carlo passes" in html


def test_predict_tta_and_mc_samples_write_probabilities_and_uncertainty(runs):
    root, image, _ = runs
    run, out = str(image.run_dir), root / "mc.csv"
    assert main(["predict", run, "builtin:digits_images", "--out", str(out), "--tta",
                 "--mc-samples", "4", "--seed", "5"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "prediction", *[f"proba_{i}" for i in range(10)],
                                   "uncertainty"]
    proba = table[[f"proba_{i}" for i in range(10)]].to_numpy()
    assert np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (table["uncertainty"] >= 0).all() and (table["uncertainty"] > 0).mean() > 0.9
    # the same seed gives the same file; another seed other passes
    assert main(["predict", run, "builtin:digits_images", "--out", str(root / "again.csv"),
                 "--tta", "--mc-samples", "4", "--seed", "5"]) == 0
    assert pd.read_csv(root / "again.csv").equals(table)
    predictor = load(run)
    X = np.load(_npz(root))["X"]
    same = predictor.predict_proba(root / "imgs.npz", mc_samples=4, seed=5)
    other = predictor.predict_proba(root / "imgs.npz", mc_samples=4, seed=6)
    assert np.array_equal(same, predictor.predict_proba(root / "imgs.npz", mc_samples=4, seed=5))
    assert not np.array_equal(same, other)
    # --tta by hand: beta * plain + (1 - beta) * the mean of the five views' probabilities
    tta = predictor.predict_proba(root / "imgs.npz", tta=True)
    x = predictor.transform(str(root / "imgs.npz"))
    with torch.no_grad():
        model = predictor.model.eval()
        shifted = [torch.nn.functional.pad(x, (1, 1, 1, 1))[..., 1 + dy : 9 + dy, 1 + dx : 9 + dx]
                   for dx, dy in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
        views = sum(torch.softmax(model(v), 1) for v in shifted) / 5
        by_hand = 0.25 * torch.softmax(model(x), 1) + 0.75 * views
    assert np.allclose(tta, by_hand.numpy(), atol=1e-6)
    assert len(X) == len(tta)


def test_tta_of_a_run_trained_without_geometry_is_the_plain_prediction(runs, tmp_path):
    root, image, _ = runs
    plain_run = tmp_path / "plain"
    shutil.copytree(image.run_dir, plain_run)
    cfg = tomllib.loads((plain_run / "config.toml").read_text())
    del cfg["augment"]  # as if trained without augmentation: no flip, no shift
    (plain_run / "config.toml").write_text(tomli_w.dumps(cfg))
    predictor = load(plain_run)
    with pytest.warns(UserWarning, match="--tta: no flip, crop or translation was trained"):
        tta = predictor.predict_proba(_npz(root), tta=True)
    assert np.allclose(tta, predictor.predict_proba(_npz(root)), atol=1e-6)


def _npz(root):
    path = root / "imgs.npz"
    if not path.exists():
        from sklearn.datasets import load_digits

        images = load_digits().images[:40].astype("float32") / 16.0
        np.savez(path, X=images[:, None])
    return path


@pytest.mark.parametrize("args, message", [
    (["--mc-samples", "0"], "argument --mc-samples: must be a whole number >= 1; got '0'"),
    (["--mc-samples", "two"], "argument --mc-samples: must be a whole number >= 1"),
    (["--seed", "-3"], "argument --seed: must be a whole number >= 0"),
])
def test_bad_flag_values_are_one_error_line(runs, capsys, args, message):
    root, image, _ = runs
    out = root / "bad.csv"
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(image.run_dir), "builtin:digits_images", "--out", str(out), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_table_runs_refuse_tta_and_mc_without_stochastic_layers(runs, capsys):
    root, _, table = runs
    out = root / "tab.csv"
    for flags, message in ((["--tta"], "--tta: test-time augmentation flips and shifts images"),
                           (["--mc-samples", "3"], "--mc-samples needs a model with a "
                                                   "stochastic layer")):
        assert main(["predict", str(table.run_dir), "builtin:iris", "--out", str(out),
                     *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
        assert not out.exists()


def test_tta_enabled_on_a_table_config_leaves_no_run_directory(runs, capsys, monkeypatch):
    root, _, _ = runs
    monkeypatch.chdir(root)
    cfg = root / "bad.toml"
    cfg.write_text('runs_dir = "fresh"\n[data]\nsource = "builtin:iris"\n'
                   "[tta]\nenabled = true\n")
    assert main(["train", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tta.enabled: test-time augmentation flips and shifts" in err[0]
    assert not (root / "fresh").exists()
    cfg.write_text('runs_dir = "fresh"\n[data]\nsource = "builtin:iris"\n'
                   "[tta]\nmc_samples = 2\n")
    assert main(["train", str(cfg), "--quiet"]) == 2
    assert "tta.mc_samples needs a model with a stochastic layer" in capsys.readouterr().err
    assert not (root / "fresh").exists()


def test_an_image_run_predicts_arrays_as_it_predicts_the_same_images_in_a_file(runs):
    root, image, table = runs
    predictor = load(image.run_dir)
    images = np.load(_npz(root))["X"]
    from_file = predictor.predict_proba(_npz(root))
    assert np.array_equal(predictor.predict_proba(images), from_file)
    assert np.array_equal(predictor.predict_proba(images[:, 0]), from_file)  # (n, H, W)
    assert np.array_equal(predictor.predict(torch.from_numpy(images)), predictor.predict(images))
    with pytest.raises(DataError, match=r"images given to predict must be an array of shape "
                                        r"\(n, 1, 8, 8\), as the run was fitted on; got "
                                        r"\(40, 1, 8, 7\)"):
        predictor.predict(images[..., :7])
    with pytest.raises(DataError, match=r"an array given to predict must have shape \(n, 4\)"):
        load(table.run_dir).predict(images)

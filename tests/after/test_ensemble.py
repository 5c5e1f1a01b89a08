"""Ensemble directories end to end on iris: training, predict and report through the command,
``trainwell.load``, snapshots, a study's best trials, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tomli_w
import torch

import trainwell as tw
from trainwell.after.calibration import expected_calibration_error, log_loss
from trainwell.cli import main
from trainwell.errors import ConfigError, RunError

IRIS = {
    "seed": 3,
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [16]},
    "train": {"epochs": 3, "batch_size": 32, "checkpoint_every": 1,
              "optimizer": {"lr": 0.01}},
    "log": {"report": False},
    "ensemble": {"members": 3, "jobs": 1},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One 3-member ensemble (seeds 3, 4, 5) shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("ens")
    cfg = {**IRIS, "runs_dir": str(root / "runs")}
    ens = tw.ensemble(cfg, name="ens")
    return ens, root


def _member_probas(ens_dir):
    out = []
    for k in range(3):
        with np.load(ens_dir / "members" / str(k) / "predictions.npz") as z:
            out.append((z["proba"], z["y_true"]))
    return out


def test_results_match_a_hand_computation(built):
    ens, _ = built
    info = json.loads((ens.run_dir / "ensemble.json").read_text())
    assert info["status"] == "completed" and info["task"] == "multiclass"
    assert [m["seed"] for m in info["members"]] == [3, 4, 5]
    members = _member_probas(ens.run_dir)
    y = members[0][1]
    assert all(np.array_equal(t, y) for _, t in members)  # one test split for all (data.seed)
    mean = np.mean([p for p, _ in members], axis=0)
    res = json.loads((ens.run_dir / "results.json").read_text())
    assert res["ensemble"]["accuracy"] == pytest.approx(float((mean.argmax(1) == y).mean()))
    nll = -np.mean(np.log(mean[np.arange(len(y)), y]))
    assert res["ensemble"]["log_loss"] == pytest.approx(nll)
    assert res["ensemble"]["ece"] == pytest.approx(expected_calibration_error(mean, y, 15))
    each = [log_loss(p, y) for p, _ in members]
    assert [m["log_loss"] for m in res["members"]] == pytest.approx(each)
    assert res["members_mean"]["log_loss"] == pytest.approx(np.mean(each))
    # the members differ (their seeds), and the mean of probabilities is no worse than theirs
    assert not np.allclose(members[0][0], members[1][0])
    assert res["ensemble"]["log_loss"] <= res["members_mean"]["log_loss"]  # Jensen


def test_predict_report_and_load_take_the_ensemble(built, tmp_path, capsys):
    ens, _ = built
    from sklearn.datasets import load_iris

    X = load_iris(as_frame=True).frame.drop(columns="target").iloc[::10]
    X.to_csv(tmp_path / "x.csv", index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(ens.run_dir), str(tmp_path / "x.csv"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    by_member = [tw.load(ens.run_dir / "members" / str(k)).predict_proba(X) for k in range(3)]
    oracle = torch.stack([torch.as_tensor(p, dtype=torch.float64) for p in by_member]).mean(0)
    got = table[[f"proba_{c}" for c in range(3)]].to_numpy()
    np.testing.assert_allclose(got, oracle.numpy(), rtol=1e-6)
    assert table["prediction"].tolist() == oracle.argmax(1).tolist()
    predictor = tw.load(ens.run_dir)
    np.testing.assert_allclose(predictor.predict_proba(X), oracle.numpy(), rtol=1e-6)
    assert predictor.predict(X).tolist() == oracle.argmax(1).tolist()
    assert ens.predict(X).tolist() == oracle.argmax(1).tolist()
    (ens.run_dir / "report.html").unlink()
    assert main(["report", str(ens.run_dir)]) == 0
    html = (ens.run_dir / "report.html").read_text()
    assert "members&#x27; mean" in html or "members' mean" in html
    assert "Calibration" in html and "data:image/png;base64," in html


def test_a_damaged_or_missing_member_is_named_at_load(built, tmp_path):
    ens, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(ens.run_dir, copy)
    (copy / "members" / "1" / "model.safetensors").unlink()
    with pytest.raises(RunError, match=r"member 1 .* has no model.safetensors"):
        tw.load(copy)
    shutil.rmtree(copy / "members" / "1")
    assert main(["predict", str(copy), "x.csv", "--out", str(tmp_path / "p.csv")]) == 2
    assert not (tmp_path / "p.csv").exists()
    shutil.copytree(ens.run_dir / "members" / "0", copy / "members" / "1")
    data = json.loads((copy / "members" / "2" / "data.json").read_text())
    data["classes"] = ["a", "b", "c"]
    (copy / "members" / "2" / "data.json").write_text(json.dumps(data))
    with pytest.raises(RunError, match="members disagree on classes"):
        tw.load(copy)
    (copy / "ensemble.json").write_text("{not json")
    with pytest.raises(RunError, match="ensemble.json is not valid JSON"):
        tw.load(copy)


def test_report_names_a_truncated_member_prediction_file(built, tmp_path, capsys):
    ens, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(ens.run_dir, copy)
    npz = copy / "members" / "1" / "predictions.npz"
    npz.write_bytes(npz.read_bytes()[:300])
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "members/1/predictions.npz cannot be read" in err, err


def test_a_comparison_refuses_an_ensemble_directory(built, tmp_path, capsys):
    ens, _ = built
    out = tmp_path / "cmp.html"
    member = ens.run_dir / "members" / "0"
    assert main(["report", str(ens.run_dir), str(member), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "is an ensemble directory" in err, err
    assert not out.exists()
    assert main(["report", str(member), str(ens.run_dir / "members" / "1"), "--out",
                 str(out)]) == 0


def test_snapshot_ensemble_keeps_one_distinct_snapshot_per_cycle(runs_dir):
    cfg = {**IRIS, "train": {**IRIS["train"], "epochs": 4}}
    ens = tw.ensemble(cfg, snapshot=2, name="snap")
    info = json.loads((ens.run_dir / "ensemble.json").read_text())
    assert info["kind"] == "snapshot" and [m["epoch"] for m in info["members"]] == [2, 4]
    from trainwell.runs import read_safetensors

    snaps = [read_safetensors(ens.run_dir / "train" / "snapshots" / f"cycle-{k}.safetensors")
             for k in range(2)]
    members = [read_safetensors(ens.run_dir / "members" / str(k) / "model.safetensors")
               for k in range(2)]
    for s, m in zip(snaps, members, strict=True):
        assert all(torch.equal(s[n], m[n]) for n in s)
    assert any(not torch.equal(snaps[0][n], snaps[1][n]) for n in snaps[0])
    run_cfg = tw.load_config(ens.run_dir / "train" / "config.toml")
    assert run_cfg.train.schedule.name == "cosine_restarts" and run_cfg.train.schedule.cycles == 2
    lrs = [json.loads(line)["lr"] for line in
           (ens.run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[1] < lrs[0] and lrs[2] > lrs[1]  # the LR at epoch 3 is back up: a restart
    assert ens.results["n_members"] == 2
    with pytest.raises(ConfigError, match="multiple of 3"):
        tw.ensemble(cfg, snapshot=3, name="snap3")
    assert sorted(p.name for p in runs_dir.iterdir()) == ["snap"]


@pytest.mark.slow
def test_from_study_top_k_copies_the_best_trials(runs_dir):
    cfg = {**IRIS, "tune": {"method": "random", "trials": 3,
                            "space": {"train.optimizer.lr": "loguniform(1e-3, 3e-2)"}}}
    study = tw.tune(cfg, name="study")
    rows = sorted((r for r in study.rows if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    ens = tw.ensemble(from_study=runs_dir / "study", top=2)
    assert ens.run_dir == runs_dir / "study-top2"
    info = json.loads((ens.run_dir / "ensemble.json").read_text())
    assert [m["trial"] for m in info["members"]] == [r["number"] for r in rows[:2]]
    shutil.rmtree(runs_dir / "study")  # the copies stand alone
    assert tw.load(ens.run_dir).predict_proba(
        np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)).shape == (1, 3)
    assert not (ens.run_dir / "members" / "0" / "checkpoints").exists()


def _write(path, cfg):
    path.write_text(tomli_w.dumps(cfg))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--members", "0"], "ensemble.members"),
        (["--set", "ensemble.seeds=[1, 1, 2]"], "ensemble.seeds: must differ"),
        (["--set", "ensemble.seeds=[1, 2]"], "2 seeds for 3 members"),
        (["--method", "median"], "ensemble.method: 'median' is not known"),
        (["--snapshot", "2", "--method", "vote"], "--method vote does not apply"),
        (["--jobs", "zero"], "--jobs must be auto"),
        (["--set", "data.split.test=0"], "data.split.test is 0"),
        (["--snapshot", "2", "--set", "data.split.test=0"], "data.split.test is 0"),
        (["--snapshot", "3", "--set", "train.average=ema"], "train.average is 'ema'"),
        # refused by the first run before its directory exists: the ensemble's goes too
        (["--set", "model.init_from=gone.safetensors"], "gone.safetensors does not exist"),
        (["--jobs", "2", "--set", "model.init_from=gone.safetensors"],
         "gone.safetensors does not exist"),
        (["--snapshot", "3", "--set", "model.init_from=gone.safetensors"],
         "gone.safetensors does not exist"),
        (["--from-study", "runs/none", "--top", "2"], "--from-study runs/none: no such"),
        (["--resume", "runs/none"], "cannot resume runs/none: no such directory"),
        (["--set", "ensemble.configs=['c.toml']"], "3 members, but ensemble.configs names 1"),
        (["--set", "ensemble.configs=['missing.toml', 'c.toml', 'c.toml']"], "'missing.toml' does"),
        (["--set", "ensemble.configs=['c.toml', 'c.toml', 'other.toml']"],
         "member 2's [data] differs"),
    ],
)
def test_bad_input_is_one_error_line_and_nothing_written(runs_dir, capsys, args, message):
    cfg = _write(runs_dir.parent / "c.toml", IRIS)
    _write(runs_dir.parent / "other.toml", {**IRIS, "data": {"source": "builtin:wine"}})
    first = [] if args[0] in ("--from-study", "--resume") else [cfg]
    assert main(["ensemble", *first, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert list(runs_dir.iterdir()) == []


def test_top_larger_than_the_study_is_refused(runs_dir, capsys):
    study = runs_dir / "study"
    (study / "trials" / "0").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"direction": "minimize", "metric": "val_loss"}))
    (study / "trials.csv").write_text("stage,number,state,value,run_dir\n"
                                      "search,0,COMPLETE,0.5,trials/0\n"
                                      "search,1,FAIL,,trials/1\n")
    assert main(["ensemble", "--from-study", str(study), "--top", "2"]) == 2
    assert "--top 2 is larger than the 1 completed trials" in capsys.readouterr().err
    assert sorted(p.name for p in runs_dir.iterdir()) == ["study"]


def test_top_counts_only_the_trials_that_trained_a_network(runs_dir, capsys):
    study = runs_dir / "study"
    (study / "trials" / "1").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"direction": "minimize", "metric": "val_loss"}))
    (study / "trials.csv").write_text("stage,number,state,value,run_dir,params.candidate\n"
                                      "search,0,COMPLETE,0.1,,knn\n"
                                      "search,1,COMPLETE,0.5,trials/1,network\n"
                                      "search,2,COMPLETE,0.2,,knn\n")
    assert main(["ensemble", "--from-study", str(study), "--top", "3"]) == 2
    err = capsys.readouterr().err
    assert ("--top 3 is larger than the 1 completed trials of study" in err
            and "2 other completed trials are scikit-learn candidates" in err
            and "give --top 1 or fewer" in err), err
    (study / "trials.csv").write_text("stage,number,state,value,run_dir,params.candidate\n"
                                      "search,0,COMPLETE,0.1,,knn\n")
    assert main(["ensemble", "--from-study", str(study), "--top", "1"]) == 2
    err = capsys.readouterr().err
    assert "nothing can be combined" in err and "or fewer" not in err, err
    assert sorted(p.name for p in runs_dir.iterdir()) == ["study"]


def test_a_regression_ensemble_averages_predictions(runs_dir, tmp_path):
    cfg = {**IRIS, "data": {"source": "builtin:diabetes"}, "ensemble": {"members": 2,
                                                                       "method": "mean"}}
    ens = tw.ensemble(cfg, name="reg")
    res = ens.results
    assert res["task"] == "regression" and set(res["ensemble"]) == {"rmse", "mae"}
    preds = []
    for k in range(2):
        with np.load(ens.run_dir / "members" / str(k) / "predictions.npz") as z:
            preds.append(z["y_pred"].reshape(-1))
            y = z["y_true"].reshape(-1)
    mean = (preds[0] + preds[1]) / 2
    assert res["ensemble"]["rmse"] == pytest.approx(float(np.sqrt(((mean - y) ** 2).mean())))
    from sklearn.datasets import load_diabetes

    X = load_diabetes(as_frame=True).frame.drop(columns="target").head(4)
    X.to_csv(tmp_path / "x.csv", index=False)
    each = [tw.load(ens.run_dir / "members" / str(k)).predict(X).reshape(-1) for k in range(2)]
    np.testing.assert_allclose(tw.load(ens.run_dir).predict(X).reshape(-1),
                               (each[0] + each[1]) / 2, rtol=1e-6)
    assert main(["predict", str(ens.run_dir), str(tmp_path / "x.csv"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv")["prediction"],
                               (each[0] + each[1]) / 2, rtol=1e-5)
    with pytest.raises(ConfigError, match="needs class probabilities"):
        tw.ensemble({**cfg, "ensemble": {"members": 2, "method": "vote"}}, name="reg-vote")
    assert not (runs_dir / "reg-vote").exists()

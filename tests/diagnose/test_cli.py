"""``trainwell doctor CONFIG``: doctor.json, exit codes, --apply and --gradcheck."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.diagnose.from_config import default_out_dir
from trainwell.errors import RunError
from trainwell.runs import default_run_name

FAST = [
    "--set",
    "doctor.overfit_iters=100",
    "--set",
    "doctor.probe_iters=30",
    "--set",
    "doctor.lr_iters=50",
    "--set",
    "doctor.probe_lrs=[0.01, 0.001]",
]


def _config(path, extra=""):
    path.write_text(
        'name = "iris-mlp"\n[data]\nsource = "builtin:iris"\n[model]\nhidden = [32, 32]\n' + extra
    )
    return str(path)


def test_healthy_config_exits_0_writes_doctor_json_and_applies_lr(runs_dir, capsys):
    cfg = _config(runs_dir.parent / "c.toml")
    out = runs_dir.parent / "tuned.toml"
    assert main(["doctor", cfg, *FAST, "--apply", str(out), "--gradcheck"]) == 0
    text = capsys.readouterr().out
    assert "0 failed" in text and "gradcheck" in text
    doc = json.loads((runs_dir / "iris-mlp-doctor" / "doctor.json").read_text())
    assert {f["check"] for f in doc["findings"]} >= {
        "data.signal",
        "init.symmetry",
        "overfit.one",
        "lr.range",
    }
    assert doc["activation_stats"]["init"]["layers"]
    suggested = next(f for f in doc["findings"] if f["check"] == "lr.range")["evidence"][
        "suggested_lr"
    ]
    tuned = load_config(str(out))
    assert tuned.train.optimizer.lr == float(f"{suggested:.3g}")
    assert tuned.model.hidden == [32, 32]


def test_failing_check_exits_1_and_out_folder_is_used(runs_dir, capsys):
    cfg = _config(runs_dir.parent / "c.toml")
    out = runs_dir.parent / "doc"
    with pytest.warns(UserWarning, match="zeros init"):  # trainwell.nn warns too
        assert main(["doctor", cfg, *FAST, "--set", "model.init=zeros", "--out", str(out)]) == 1
    assert "[FAIL] init.symmetry" in capsys.readouterr().out
    doc = json.loads((out / "doctor.json").read_text())
    assert any(f["check"] == "init.symmetry" and f["status"] == "fail" for f in doc["findings"])


def test_bad_override_exits_2(runs_dir, capsys):
    cfg = _config(runs_dir.parent / "c.toml")
    assert main(["doctor", cfg, "--set", "doctor.overfit_iters=0"]) == 2
    assert "doctor.overfit_iters" in capsys.readouterr().err
    assert main(["doctor", cfg, "--set", "doctor.checks=['overfitt']"]) == 2
    assert "did you mean 'overfit'" in capsys.readouterr().err
    assert main(["doctor", cfg, "--set", "doctor.lr_max=1e-7"]) == 2
    assert "doctor.lr_max: must be greater than doctor.lr_min" in capsys.readouterr().err


def test_apply_without_the_lr_check_is_refused_before_running(runs_dir, capsys):
    cfg = _config(runs_dir.parent / "c.toml")
    args = ["doctor", cfg, "--set", "doctor.checks=['data']", "--apply", "x.toml"]
    assert main(args) == 2
    assert "needs the 'lr' check" in capsys.readouterr().err
    assert not (runs_dir / "iris-mlp-doctor").exists()


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("builtin:iris", None, "iris-mlp-doctor"),
        ("csv:data\\houses.csv", None, "houses-mlp-doctor"),  # a Windows path: the file's stem
        ("builtin:iris", "mine", "mine-doctor"),
    ],
)
def test_the_default_out_dir_is_the_run_name_with_a_doctor_suffix(source, name, expected):
    raw = {"data": {"source": source}, "runs_dir": "somewhere"}
    if name:
        raw["name"] = name
    cfg = load_config(raw)
    assert default_out_dir(cfg) == Path("somewhere") / expected
    if name is None:
        assert expected == default_run_name(source, cfg.model.arch) + "-doctor"


def test_a_run_name_train_would_refuse_is_refused_for_the_doctor_too():
    cfg = load_config({"data": {"source": "builtin:iris"}, "name": "../elsewhere"})
    with pytest.raises(RunError, match="run name '../elsewhere' is not allowed"):
        default_out_dir(cfg)

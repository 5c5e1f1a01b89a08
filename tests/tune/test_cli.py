"""``trainwell tune`` on the command line."""

from __future__ import annotations

import json

from trainwell.cli import main

CONFIG = """
name = "cli"
[data]
source = "builtin:iris"
[model]
hidden = [8]
[train]
epochs = 2
[log]
report = false
[tune]
method = "random"
trials = 2
pruner = { name = "none" }
[tune.space]
"train.optimizer.lr" = "loguniform(1e-3, 1e-1)"
"""


def test_tune_command_prints_the_leaderboard_and_writes_the_study(runs_dir, capsys):
    (runs_dir.parent / "exp.toml").write_text(CONFIG)
    assert main(["tune", "exp.toml", "--set", "tune.trials=3", "--name", "s1"]) == 0
    out = capsys.readouterr().out
    assert "3 trials: 3 complete" in out and "train.optimizer.lr" in out and "best config:" in out
    info = json.loads((runs_dir / "s1" / "study.json").read_text())
    assert info["method"] == "random" and info["best_trial"]["run_dir"].startswith("trials")
    assert main(["tune", "--resume", "runs/s1", "--set", "tune.trials=4"]) == 0
    assert "4 trials: 4 complete" in capsys.readouterr().out


def test_tune_command_refuses_bad_input_without_a_traceback(runs_dir, capsys):
    (runs_dir.parent / "exp.toml").write_text(
        CONFIG.replace('"train.optimizer.lr"', '"train.optimiser.lr"')
    )
    assert main(["tune", "exp.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'train.optimiser.lr' is not a config field" in err
    assert "did you mean 'train.optimizer.lr'" in err and "Traceback" not in err
    assert main(["tune"]) == 2
    assert "needs CONFIG, or --resume STUDY_DIR" in capsys.readouterr().err
    assert main(["tune", "exp.toml", "--workers", "0"]) == 2
    assert main(["tune", "--resume", "runs/nothing"]) == 2
    assert "not a study directory" in capsys.readouterr().err


def test_tune_command_names_a_scikit_learn_winner(runs_dir, capsys):
    (runs_dir.parent / "sel.toml").write_text(
        CONFIG.split("[tune]")[0]
        + """
[tune]
method = "grid"
[[tune.candidates]]
name = "knn"
space = { n_neighbors = "choice(3, 5)" }
"""
    )
    assert main(["tune", "sel.toml", "--name", "sel"]) == 0
    out = capsys.readouterr().out
    assert "2 trials: 2 complete" in out and "candidate" in out
    assert "the scikit-learn candidate 'knn'" in out and "trainwell train runs" not in out
    assert 'candidate = "knn"' in (runs_dir / "sel" / "best_config.toml").read_text()

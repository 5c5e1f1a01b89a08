"""The command line starts, validates configs and names bad keys."""

from __future__ import annotations

from trainwell.cli import main


def test_check_names_unknown_key_with_suggestion(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nactvation = "relu"\n')
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "model.actvation: unknown key" in err
    assert "did you mean 'model.activation'" in err


def test_check_accepts_valid_config_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nsource = "builtin:iris"\n')
    assert main(["check", str(cfg), "--set", "train.epochs=3"]) == 0
    assert "config is valid" in capsys.readouterr().out


def test_override_out_of_range_names_path_and_value(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    assert main(["check", str(cfg), "--set", "train.epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs" in err and "got 0" in err

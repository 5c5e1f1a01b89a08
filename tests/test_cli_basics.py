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


def test_help_does_not_import_heavy_libraries():
    """``trainwell --help`` stays fast: no torch, pandas, sklearn, optuna or matplotlib."""
    import subprocess
    import sys

    code = (
        "import sys, trainwell.cli as c; c.build_parser();"
        "heavy = [m for m in ('torch', 'pandas', 'sklearn', 'optuna', 'matplotlib')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    from trainwell.runs import write_text_atomic

    path = write_text_atomic(tmp_path / "a.txt", "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_union_field_gets_one_message(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nactivation = 1\n")
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "model.activation: expected a string or a table; got 1" in err
    assert err.count("model.activation") == 1


def test_check_refuses_a_loss_that_does_not_fit_the_task(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nsource = "builtin:diabetes"\ntask = "regression"\n'
                   '[train]\nloss = "hinge"\n')
    assert main(["check", str(cfg)]) == 2
    assert "train.loss 'hinge' does not fit a regression task" in capsys.readouterr().err


def test_check_refuses_a_search_space_path_that_does_not_exist(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tune.space]\n"train.optimizer.lrr" = "loguniform(1e-4, 1e-1)"\n')
    assert main(["check", str(cfg)]) == 2
    assert "train.optimizer.lrr" in capsys.readouterr().err


def test_the_old_augment_field_points_to_the_augment_section(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\naugment = ["flip"]\n')
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "data.augment: augmentation moved to its own section [augment]" in err
    assert "['flip']" in err


def test_the_command_skips_teardown_but_not_exit_handlers_codes_or_output(tmp_path):
    """``trainwell`` (``cli.run``) ends with os._exit after the atexit handlers, with main's
    exit code."""
    import subprocess
    import sys

    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nsource = "builtin:iris"\n')
    code = (
        "import atexit, sys\n"
        "from trainwell.cli import run\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "class Late:\n"
        "    def __del__(self):\n"  # module teardown would run this; the quick exit does not
        "        print('teardown ran')\n"
        "keep = Late()\n"
        "print('buffered', end='')\n"  # no newline, no flush: run() flushes it
        "sys.argv = ['trainwell', *sys.argv[1:]]\n"
        "run()\n"
    )
    # argparse's error is a SystemExit: the normal way out, with its teardown
    for args, rc, quick in ((["check", str(cfg)], 0, True),
                            (["check", str(tmp_path / "none.toml")], 2, True),
                            (["--no-such-flag"], 2, False)):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                             check=False)
        assert out.returncode == rc, out.stderr
        assert out.stdout.startswith("buffered") and "handler ran" in out.stdout
        assert ("teardown ran" in out.stdout) is not quick
    assert "config is valid" in subprocess.run(
        [sys.executable, "-m", "trainwell", "check", str(cfg)], capture_output=True, text=True,
        check=True).stdout

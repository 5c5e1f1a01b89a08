"""How much the command prints: -v and -vv, -q, the flags after the subcommand, and the epoch
lines going through the logger ``trainwell.progress``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainwell.cli import build_parser, main

IRIS = '[data]\nsource = "builtin:iris"\n[train]\nepochs = 2\nbatch_size = 32\n'
NO_REPORT = ["--set", "log.report=false"]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "iris.toml"
    cfg.write_text(IRIS)
    return cfg


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_flags_parse_before_and_after_the_subcommand():
    parser = build_parser()
    for argv, verbose, quiet in (
        (["train", "c.toml"], 0, False),
        (["-v", "train", "c.toml"], 1, False),
        (["train", "c.toml", "-v"], 0, False),  # counted by main as sub_verbose
        (["-q", "train", "c.toml"], 0, True),
        (["train", "c.toml", "--quiet"], 0, False),
    ):
        args = parser.parse_args(argv)
        assert (args.verbose, args.quiet) == (verbose, quiet), argv
    args = parser.parse_args(["-v", "predict", "r", "x.csv", "--out", "o.csv", "-vv", "-q"])
    assert (args.verbose, args.sub_verbose, args.sub_quiet) == (1, 2, True)
    assert "-vv: also other libraries'" in parser.format_help()


def test_verbose_and_quiet_together_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", str(_config(tmp_path)), "-v", "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "-q/--quiet" in err


def test_default_quiet_and_verbose_in_process(runs_dir, tmp_path, capsys, caplog):
    cfg = str(_config(tmp_path))
    own_level = logging.getLogger("trainwell").level
    caplog.set_level(logging.NOTSET)
    assert main(["train", cfg, "--name", "a", *NO_REPORT]) == 0
    out = _lines(capsys.readouterr().out)
    assert [line.split(":")[0] for line in out[:2]] == ["epoch 1", "epoch 2"]
    assert out[2].startswith("run runs/a: best epoch 2") and len(out) == 3
    assert not [r for r in caplog.records if r.levelno < logging.WARNING
                and r.name != "trainwell.progress"]

    caplog.clear()
    assert main(["train", cfg, "--name", "b", "-v", *NO_REPORT]) == 0
    own = {r.name for r in caplog.records if r.levelno < logging.WARNING}
    assert "trainwell.nn.build" in own and all(n.startswith("trainwell.") for n in own), own
    assert logging.getLogger("trainwell").level == own_level  # restored afterwards
    capsys.readouterr()

    assert main(["train", cfg, "--name", "c", "--quiet", *NO_REPORT]) == 0
    out = _lines(capsys.readouterr().out)
    assert len(out) == 1 and out[0].startswith("run runs/c: best epoch 2")
    assert logging.getLogger("trainwell.progress").level == logging.INFO  # restored


def test_errors_still_print_with_quiet(runs_dir, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(IRIS + "epochs_typo = 3\n")
    assert main(["-q", "train", str(tmp_path / "bad.toml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: invalid config") and "epochs_typo" in captured.err
    assert list(runs_dir.iterdir()) == []


def test_epoch_lines_go_through_the_progress_logger(capsys):
    import torch

    from trainwell.train.progress import EpochLines, epoch_line, progress_logger
    from trainwell.train.trainer import Trainer

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    keep = Keep()
    progress_logger.addHandler(keep)
    try:
        trainer = Trainer(torch.nn.Linear(3, 2), epochs=2, batch_size=10, seed=0,
                          callbacks=[EpochLines()]).fit(data)
        out = capsys.readouterr().out.splitlines()
        state = (progress_logger.disabled, progress_logger.level, progress_logger.handlers,
                 logging.root.manager.disable)
        assert out == [epoch_line(r) for r in trainer.history], state
        assert [r.getMessage() for r in seen] == out and {r.levelno for r in seen} == {20}
        progress_logger.setLevel(logging.WARNING)  # what -q does: no lines, nothing logged
        Trainer(torch.nn.Linear(3, 2), epochs=1, batch_size=10, seed=0,
                callbacks=[EpochLines()]).fit(data)
        assert capsys.readouterr().out == "" and len(seen) == 2
    finally:
        progress_logger.setLevel(logging.INFO)
        progress_logger.removeHandler(keep)


@pytest.mark.slow
def test_line_counts_of_the_real_command(tmp_path):
    """A 2-epoch run with its report in a fresh process: -v (after the subcommand) adds
    trainwell's messages only (no font lookups: those come with -vv); -q the final lines."""
    _config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    counts = {}
    for flags in ("-v", "-q"):
        argv = [sys.executable, "-m", "trainwell", "train", "iris.toml", "--name", f"r{flags}"]
        proc = subprocess.run([*argv, flags], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        counts[flags] = (_lines(proc.stdout), _lines(proc.stderr))
    out, err = counts["-v"]
    assert len(out) == 4 and out[1].startswith("epoch 2: ") and 1 <= len(err) <= 10, err
    assert all(line.split()[1].startswith("trainwell.") for line in err), err
    assert "INFO trainwell.report.run_report: wrote runs/r-v/report.html" in err
    out, err = counts["-q"]
    assert err == [] and len(out) == 2 and out[0].startswith("run runs/r-q: best epoch 2")
    assert out[1] == "report: runs/r-q/report.html"

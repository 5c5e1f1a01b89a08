"""Run directories: atomic writes, staged creation, no overwrite, the metrics log."""

from __future__ import annotations

import os

import pytest
import torch

from trainwell.errors import RunError
from trainwell.runs import (
    MetricsLog,
    new_run_dir,
    read_json,
    read_safetensors,
    write_json_atomic,
    write_safetensors_atomic,
    write_text_atomic,
)


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "x.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert os.listdir(path.parent) == ["x.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.txt"
    write_text_atomic(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


def test_safetensors_round_trip(tmp_path):
    t = {"w": torch.arange(6, dtype=torch.float64).reshape(2, 3)}
    write_safetensors_atomic(tmp_path / "w.safetensors", t)
    assert torch.equal(read_safetensors(tmp_path / "w.safetensors")["w"], t["w"])
    with pytest.raises(RunError, match="does not exist"):
        read_safetensors(tmp_path / "none.safetensors")


def test_failed_start_leaves_no_half_made_run_directory(runs_dir):
    with pytest.raises(ValueError, match="bad data"):
        with new_run_dir(runs_dir, "r1") as staging:
            write_json_atomic(staging / "config.json", {})
            raise ValueError("bad data")
    assert os.listdir(runs_dir) == []


def test_run_directory_is_created_whole_and_never_overwritten(runs_dir):
    with new_run_dir(runs_dir, "r1") as staging:
        write_text_atomic(staging / "config.toml", "x = 1\n")
        assert not (runs_dir / "r1").exists()  # only visible once complete
    assert (runs_dir / "r1" / "config.toml").read_text() == "x = 1\n"
    with pytest.raises(RunError, match="r1 already exists"):
        with new_run_dir(runs_dir, "r1"):
            pass
    assert os.listdir(runs_dir) == ["r1"]
    with pytest.raises(RunError, match="not allowed"):
        with new_run_dir(runs_dir, "../escape"):
            pass


def test_metrics_log_append_torn_line_and_truncate(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for e in (1, 2, 3):
        log.append({"epoch": e, "loss": 1.0 / e})
    with open(log.path, "a") as fh:
        fh.write('{"epoch": 4, "lo')  # a killed process
    assert [r["epoch"] for r in log.read()] == [1, 2, 3]
    log.truncate_to(2)
    assert [r["epoch"] for r in log.read()] == [1, 2]


@pytest.fixture
def umask_027():
    """The process's umask set to 0o027 for one test (the library only follows it)."""
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_run_directory_and_files_get_the_umasks_modes(runs_dir, umask_027):
    with new_run_dir(runs_dir, "r1") as staging:
        assert staging.stat().st_mode & 0o777 == 0o750  # not tempfile's 0o700
        write_text_atomic(staging / "config.toml", "x = 1\n")
        write_safetensors_atomic(staging / "w.safetensors", {"w": torch.zeros(2)})
    run = runs_dir / "r1"
    assert run.stat().st_mode & 0o777 == 0o750
    assert {p.name: p.stat().st_mode & 0o777 for p in run.iterdir()} == {
        "config.toml": 0o640, "w.safetensors": 0o640}  # not tempfile's 0o600
    os.umask(0o022)
    write_text_atomic(run / "config.toml", "x = 2\n")
    assert (run / "config.toml").stat().st_mode & 0o777 == 0o644


def test_a_taken_temporary_name_is_skipped(tmp_path, monkeypatch):
    import trainwell.runs as runs

    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".x.txt.aaaa.tmp").write_text("someone else's")
    write_text_atomic(tmp_path / "x.txt", "mine")
    assert (tmp_path / "x.txt").read_text() == "mine"
    assert (tmp_path / ".x.txt.aaaa.tmp").read_text() == "someone else's"
    assert sorted(os.listdir(tmp_path)) == [".x.txt.aaaa.tmp", "x.txt"]

"""A checkpoint records what bit-exact resume depends on; a resume that differs says so, and
``threads = "auto"`` resumes with the count it chose at the start."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from trainwell.errors import ConfigError
from trainwell.train import Trainer
from trainwell.train.threads import (
    SMALL_STEP,
    auto_threads,
    available_cores,
    resolve_threads,
    use_threads,
)


def _trainer(tmp_path, epochs, threads):
    torch.manual_seed(0)
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    t = Trainer(nn.Linear(4, 3), epochs=epochs, seed=0, checkpoint_dir=tmp_path / "ckpt",
                checkpoint_every=1, threads=threads)
    return t, (X, y)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if "bit-identical" in r.getMessage()]


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_resume_with_another_thread_count_warns_what_will_not_be_exact(
    tmp_path, caplog, keep_threads
):
    torch.set_num_threads(1)
    t, data = _trainer(tmp_path, 2, None)  # None: torch's own setting
    t.fit(data)
    assert t.state_dict()["environment"] == {
        "threads": 1, "torch": torch.__version__, "device": "cpu"}
    with caplog.at_level(logging.WARNING, logger="trainwell"):
        _trainer(tmp_path, 3, None)[0].fit(data, resume=tmp_path / "ckpt")
    assert _warnings(caplog) == []
    torch.set_num_threads(2)
    with caplog.at_level(logging.WARNING, logger="trainwell"):
        _trainer(tmp_path, 4, None)[0].fit(data, resume=tmp_path / "ckpt")
    warned = _warnings(caplog)
    assert len(warned) == 1 and "threads 1 -> 2" in warned[0]


def test_auto_threads_resume_with_the_count_chosen_at_the_start(tmp_path, caplog, keep_threads):
    torch.set_num_threads(2)
    t, data = _trainer(tmp_path, 2, "auto")
    t.fit(data)
    assert torch.get_num_threads() == 2  # the fit's count is restored afterwards
    with caplog.at_level(logging.WARNING, logger="trainwell"):
        again = _trainer(tmp_path, 3, "auto")[0]
        again.fit(data, resume=tmp_path / "ckpt")
    from trainwell.train.checkpoint import load_checkpoint

    assert _warnings(caplog) == []
    assert load_checkpoint(tmp_path / "ckpt")["environment"]["threads"] == 1


def test_the_auto_policy_gives_one_thread_to_a_small_step_and_idle_cores_to_a_large_one():
    small = nn.Linear(10, 10)
    assert auto_threads(small, 64) == 1
    large = nn.Linear(2000, 1000)  # 2e6 parameters x 64 rows > SMALL_STEP
    assert 2_001_000 * 64 > SMALL_STEP
    assert 1 <= auto_threads(large, 64) <= available_cores()
    with use_threads(1):  # a process set to one thread (a tuning worker) keeps one
        assert auto_threads(large, 64) == 1
    assert resolve_threads(3, small, 64) == 3 and resolve_threads(None, small, 64) is None
    with pytest.raises(ConfigError, match="train.threads must be"):
        resolve_threads(0, small, 64)


def test_use_threads_restores_the_count(keep_threads):
    torch.set_num_threads(2)
    with use_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2

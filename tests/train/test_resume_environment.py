"""A checkpoint records what bit-exact resume depends on; a resume that differs says so."""

from __future__ import annotations

import logging

import torch
from torch import nn

from trainwell.train import Trainer


def _trainer(tmp_path, epochs):
    torch.manual_seed(0)
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    t = Trainer(nn.Linear(4, 3), epochs=epochs, seed=0, checkpoint_dir=tmp_path / "ckpt",
                checkpoint_every=1)
    return t, (X, y)


def test_a_resume_with_another_thread_count_warns_what_will_not_be_exact(tmp_path, caplog):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        t, data = _trainer(tmp_path, 2)
        t.fit(data)
        assert t.state_dict()["environment"] == {
            "threads": 1, "torch": torch.__version__, "device": "cpu"}
        with caplog.at_level(logging.WARNING, logger="trainwell"):
            again, data = _trainer(tmp_path, 3)
            again.fit(data, resume=tmp_path / "ckpt")
        assert not [r for r in caplog.records if "bit-identical" in r.getMessage()]
        torch.set_num_threads(2)
        with caplog.at_level(logging.WARNING, logger="trainwell"):
            third, data = _trainer(tmp_path, 4)
            third.fit(data, resume=tmp_path / "ckpt")
        warned = [r.getMessage() for r in caplog.records if "bit-identical" in r.getMessage()]
        assert len(warned) == 1 and "threads 1 -> 2" in warned[0]
    finally:
        torch.set_num_threads(threads)

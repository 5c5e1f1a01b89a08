"""A snapshot ensemble runs all its cycles: its run never stops early, also once its config
has been written to TOML and read back (which has no None for ``patience``)."""

from __future__ import annotations

import json

import trainwell as tw

CFG = {
    "seed": 0,
    "data": {"source": "builtin:iris"},
    "model": {"hidden": [8]},
    # at this LR the val accuracy on iris stays where it starts: 10 epochs without a gain
    "train": {"epochs": 24, "batch_size": 32, "optimizer": {"lr": 1e-5},
              "early_stopping": {"metric": "val_accuracy", "patience": 3}},
    "log": {"report": False},
}


def test_snapshot_run_trains_every_cycle_without_early_stopping(runs_dir):
    ens = tw.ensemble(CFG, snapshot=2, name="snap")
    run_cfg = tw.load_config(ens.run_dir / "train" / "config.toml")
    assert run_cfg.train.early_stopping.patience is None or (
        run_cfg.train.early_stopping.patience >= CFG["train"]["epochs"])
    epochs = [json.loads(line)["epoch"] for line in
              (ens.run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 25))
    assert all((ens.run_dir / "train" / "snapshots" / f"cycle-{k}.safetensors").is_file()
               for k in range(2))
    assert ens.results["n_members"] == 2

"""Data-parallel training (train/distributed.py): the batches split by rank, the checks of the
global batch, ``fit`` inside a caller's process group, and 2 gloo processes on this machine
through torchrun: one model, equal to one process within a tolerance, only rank 0 writing, a
SIGKILLed launcher resumed bit-identical, a changed world size refused."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomli_w
import torch
import torch.distributed as dist
from killing import epoch_records
from safetensors.torch import load_file

import trainwell
from trainwell.cli import main
from trainwell.errors import ConfigError
from trainwell.train.data import TensorBatches
from trainwell.train.distributed import (
    ShardedTensorBatches,
    _HookState,
    check_world_batch,
    intra_op_threads,
    process_group,
    rank_share,
)

#: DDP against one process on the config below after 3 epochs: the largest weight difference
#: measured was 9e-8 (the gradient sums are ordered differently); the test allows 1e-6
TOLERANCE = 1e-6


def _config(runs: Path, **train) -> dict:
    return {
        "seed": 0,
        "runs_dir": str(runs),
        "data": {"source": "builtin:digits", "preprocess": ["standardize"],
                 "split": {"val": 0.15, "test": 0.15, "stratify": True}},
        "model": {"arch": "mlp", "hidden": [32]},
        # 1257 training rows in global batches of 50: the last one (7 rows) splits 4 / 3
        "train": {"epochs": 3, "batch_size": 50, "checkpoint_every": 1, **train},
        "log": {"report": False},
    }


# ---------------------------------------------------------------------------- in one process


def test_rank_shares_cover_each_global_batch_once():
    for n in (1, 7, 50, 64):
        for world in (1, 2, 3):
            if n < world:
                continue
            shares = [rank_share(n, r, world) for r in range(world)]
            assert shares[0][0] == 0 and shares[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))
            sizes = [b - a for a, b in shares]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_the_ranks_shares_are_the_batches_of_one_process_in_order():
    X, y = torch.arange(23.0).reshape(23, 1), torch.arange(23)
    one = list(TensorBatches(X, y, 10, True, torch.Generator().manual_seed(3), torch.device("cpu")))
    ranks = []
    for r in range(2):
        hook = _HookState(None, 2)
        batches = ShardedTensorBatches(X, y, 10, True, torch.Generator().manual_seed(3),
                                       torch.device("cpu"), r, 2, hook)
        got = []
        for xb, yb in batches:
            got.append((xb, yb, hook.weight))
        assert len(got) == len(batches) == 3
        ranks.append(got)
    for i, (xb, yb) in enumerate(one):
        (x0, y0, w0), (x1, y1, w1) = ranks[0][i], ranks[1][i]
        assert torch.equal(torch.cat([x0, x1]), xb) and torch.equal(torch.cat([y0, y1]), yb)
        assert w0 == len(x0) / len(xb) and w1 == len(x1) / len(xb)  # the gradient weights
    assert [len(b[0]) for b in ranks[0]] == [5, 5, 2] and [len(b[0]) for b in ranks[1]] == [
        5, 5, 1]


def test_with_accumulation_each_rank_weighs_its_share_of_the_whole_group():
    # 23 rows in global batches of 5, groups of 3: (5, 5, 5) and (5, 3); rank 0 takes 3 rows of
    # each 5 and 2 of the 3, so its weights are 9 / 15 and 5 / 8 (not 2 / 3, its last share)
    X = torch.arange(23.0).reshape(23, 1)
    for rank, want in ((0, [9 / 15, 5 / 8]), (1, [6 / 15, 3 / 8])):
        hook = _HookState(None, 2)
        batches = ShardedTensorBatches(X, None, 5, False, None, torch.device("cpu"), rank, 2,
                                       hook, accumulate=3)
        weights = [hook.weight for _ in batches]
        assert weights == [want[0]] * 3 + [want[1]] * 2


def test_a_last_batch_too_small_for_every_rank_is_left_out(caplog):
    X = torch.arange(21.0).reshape(21, 1)
    batches = ShardedTensorBatches(X, None, 10, False, None, torch.device("cpu"), 0, 2,
                                   _HookState(None, 2), min_rows=2)  # 1 row left: too few
    assert len(batches) == 2 and sum(len(b[0]) for b in batches) == 10
    assert "leave a last batch of 1 rows" in caplog.text


def test_a_global_batch_smaller_than_the_processes_is_refused():
    check_world_batch(4, 4)
    with pytest.raises(ConfigError, match=r"train.batch_size = 3 .* 4 processes.*>= 4"):
        check_world_batch(3, 4)
    with pytest.raises(ConfigError, match=r"BatchNorm needs 2 rows per process"):
        check_world_batch(5, 3, min_rows=2)
    assert intra_op_threads(1) >= 1 and intra_op_threads(10_000) == 1


def test_one_process_without_torchrun_has_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group("cpu") as group:
        assert group is None


@pytest.mark.slow
def test_fit_inside_a_callers_process_group_uses_it_and_leaves_it(runs_dir):
    """A group the caller initialized (here a world of one) trains through DDP and is left
    initialized; the run equals a plain one-process run."""
    cfg = _config(runs_dir, epochs=2)
    plain = trainwell.fit(cfg, name="plain", quiet=True)
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    seen = []

    class Wrapped:  # what the trainer trains through, each epoch
        def after_epoch(self, trainer):
            seen.append(type(trainer.distributed.ddp).__name__ if trainer.distributed else None)

    try:
        run = trainwell.fit(cfg, name="grouped", quiet=True, callbacks=[Wrapped()])
        assert dist.is_initialized()
        assert seen == ["DistributedDataParallel"] * 2  # trained through DDP
        assert run.trainer.distributed is None  # and the returned trainer holds no wrapper
    finally:
        dist.destroy_process_group()
    assert epoch_records(run.run_dir) == epoch_records(plain.run_dir)
    a, b = load_file(run.run_dir / "model.safetensors"), load_file(plain.run_dir /
                                                                    "model.safetensors")
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = json.loads((run.run_dir / "checkpoints" / "last.json").read_text())
    assert ckpt["state"]["callbacks"]["distributed"]["world_size"] == 1


def test_a_dataset_streams_through_a_distributed_sampler_with_set_epoch():
    """A Dataset (lazily loaded data) is read through a DistributedSampler whose epoch is set
    before each epoch: its order changes per epoch and matches torch's own sampler."""
    from torch import nn
    from torch.utils.data import DistributedSampler, TensorDataset

    from trainwell.train import Trainer
    from trainwell.train.distributed import Distributed, distribute

    seen: list[list[int]] = [[]]  # the first batch, read before training (the objective's setup)

    class Rows(TensorDataset):
        def __getitem__(self, i):
            seen[-1].append(int(i))
            return super().__getitem__(i)

    class NewEpoch:
        def before_epoch(self, trainer):
            seen.append([])

    X, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ctx = Distributed(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"),
                          created=False)
        trainer = Trainer(nn.Linear(3, 2), epochs=2, batch_size=4, seed=0, callbacks=[NewEpoch()])
        data = distribute(trainer, ctx, Rows(X, y), seed=5)
        trainer.fit(data)
    finally:
        dist.destroy_process_group()
    expected = []
    for epoch in (1, 2):
        sampler = DistributedSampler(Rows(X, y), num_replicas=1, rank=0, seed=5)
        sampler.set_epoch(epoch)
        expected.append(list(sampler))
    assert seen[1:] == expected and expected[0] != expected[1]


def test_nproc_zero_and_too_many_processes_are_refused(runs_dir, capsys):
    path = runs_dir.parent / "c.toml"
    path.write_text(tomli_w.dumps(_config(runs_dir, batch_size=2)))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--nproc", "0"])
    assert exc.value.code == 2
    assert "--nproc: must be a whole number >= 1; got '0'" in capsys.readouterr().err
    assert main(["train", str(path), "--nproc", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train.batch_size = 2 is the global batch")
    assert "3 processes" in err[0] and list(runs_dir.iterdir()) == []


def test_an_interrupted_rank_0_names_the_process_count_to_resume_with(runs_dir, capsys,
                                                                       monkeypatch):
    path = runs_dir.parent / "c.toml"
    path.write_text(tomli_w.dumps(_config(runs_dir)))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("trainwell.api.fit", interrupted)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", str(path)]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted; a run continues with trainwell train --resume RUN --nproc 2")


# ---------------------------------------------------------------------------- 2 processes

_WORKER = textwrap.dedent("""
    import gc, hashlib, os, signal, sys
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    import trainwell

    class KillLauncher:  # rank 0 SIGKILLs torchrun (this process's parent) at an epoch's end
        def after_epoch(self, trainer):
            if trainer.epoch == int(sys.argv[3]) and dist.get_rank() == 0:
                os.kill(os.getppid(), signal.SIGKILL)
                signal.pause()  # ended by the parent's death

    runs = os.path.abspath("runs")
    writes = []

    def under_runs(path):
        return not isinstance(path, int) and os.path.abspath(os.fsdecode(path)).startswith(runs)

    def audit(event, args):  # what this process writes under runs/ (files, folders, renames)
        if event == "open" and under_runs(args[0]):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                writes.append(args[0])
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove") and under_runs(
                args[0]):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    path, name = sys.argv[1], sys.argv[2]
    callbacks = [KillLauncher()] if len(sys.argv) > 3 else []
    run = trainwell.fit(path, name=name, quiet=True, callbacks=callbacks)
    # the DDP wrapper (and the process group it holds) is freed before fit returns, not in the
    # interpreter's teardown, where gloo's threads can abort a process that succeeded
    wrappers = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes()
                                     for p in run.model.parameters())).hexdigest()
    line = (f"rank {dist.get_rank() if dist.is_initialized() else os.environ['RANK']} "
            f"params {digest} test {run.metrics.get('test_accuracy')} writes {len(writes)} "
            f"wrappers {wrappers} group {dist.is_initialized()}\\n")
    os.write(1, line.encode())  # one write: the two ranks share the pipe, print writes twice
""")


def _env() -> dict[str, str]:
    src = str(Path(trainwell.__file__).resolve().parents[1])
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _launch_worker(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The worker script in 2 processes through the launcher of ``trainwell train --nproc``."""
    script = folder / "worker.py"
    script.write_text(_WORKER)
    code = ("import sys; from trainwell.train.distributed import launch; "
            "sys.exit(launch(2, sys.argv[1:], module=False))")
    return subprocess.run([sys.executable, "-c", code, str(script), *args], cwd=folder,
                          env=_env(), capture_output=True, text=True, timeout=300, check=False)


def _command(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainwell", *args], cwd=folder, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """An uninterrupted 2-process run, and one whose launcher was SIGKILLed after epoch 2."""
    folder = tmp_path_factory.mktemp("ddp")
    runs = folder / "runs"
    (folder / "c.toml").write_text(tomli_w.dumps(_config(runs)))
    full = _launch_worker(folder, "c.toml", "full")
    assert full.returncode == 0, full.stderr
    killed = _launch_worker(folder, "c.toml", "killed", "2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return folder, full


@pytest.mark.slow
def test_two_processes_train_one_model_and_only_rank_0_writes(two_process_runs):
    folder, full = two_process_runs
    lines = sorted(line for line in full.stdout.splitlines() if line.startswith("rank "))
    assert [line.split()[1] for line in lines] == ["0", "1"]
    digests = {line.split()[3] for line in lines}
    assert len(digests) == 1  # identical parameters on both ranks
    tests = {line.split()[5] for line in lines}
    assert len(tests) == 1 and tests != {"None"}  # every rank returns rank 0's results
    writes = [int(line.split()[7]) for line in lines]
    assert writes[0] > 10 and writes[1] == 0  # rank 1 opened nothing under runs/ for writing
    # no DDP wrapper alive once fit returned, and the group fit made is gone
    assert [line.split()[9:] for line in lines] == [["0", "group", "False"]] * 2
    run = folder / "runs" / "full"
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["full", "killed"]
    assert len(epoch_records(run)) == 3  # one writer: one line per epoch
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed"
    state = json.loads((run / "checkpoints" / "last.json").read_text())["state"]
    ranks = state["callbacks"]["distributed"]
    assert ranks["world_size"] == 2 and len(ranks["ranks"]) == 2
    # the run loads and predicts as any run: the plain module's weights, no "module." prefix
    predictor = trainwell.load(run)
    assert predictor.outputs(torch.zeros(5, 64), transformed=True).shape == (5, 10)


@pytest.mark.slow
def test_two_processes_equal_one_process_within_the_tolerance(two_process_runs, monkeypatch):
    folder, _ = two_process_runs
    monkeypatch.chdir(folder)
    one = trainwell.fit(_config(folder / "one-runs"), name="one", quiet=True)
    ddp = load_file(folder / "runs" / "full" / "model.safetensors")
    ref = load_file(one.run_dir / "model.safetensors")
    gap = max(float((ddp[k] - ref[k]).abs().max()) for k in ref)
    assert 0 <= gap < TOLERANCE
    for a, b in zip(epoch_records(folder / "runs" / "full"), epoch_records(one.run_dir),
                    strict=True):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) < 1e-5 for k in a)


@pytest.mark.slow
def test_a_killed_launcher_resumes_bit_identical_and_a_changed_world_size_is_refused(
    two_process_runs, capsys, caplog
):
    folder, _ = two_process_runs
    killed = folder / "runs" / "killed"
    meta = (killed / "meta.json").read_text()
    assert json.loads(meta)["status"] == "running"
    assert json.loads((killed / "checkpoints" / "last.json").read_text())["state"]["epoch"] == 1
    # one process cannot continue a 2-process run exactly: refused, the run left as it was
    assert main(["train", "--resume", str(killed)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained by 2 process(es) and this resume has 1" in err[0]
    assert "--nproc 2" in err[0] and "--allow-world-size-change" in err[0]
    assert (killed / "meta.json").read_text() == meta
    # allowed: one process continues a copy of it, with a warning that it will not be exact
    copy = folder / "runs" / "killed-copy"
    shutil.copytree(killed, copy)
    with caplog.at_level(logging.WARNING, logger="trainwell"):
        assert main(["train", "--resume", str(copy), "--allow-world-size-change"]) == 0
    assert "trained by 2 process(es), with 1" in caplog.text and "not bit-identical" in caplog.text
    assert len(epoch_records(copy)) == 3
    assert epoch_records(copy)[0] == epoch_records(killed)[0]  # the checkpoint's epoch kept
    shutil.rmtree(copy)
    resumed = _command(folder, "train", "--resume", "runs/killed", "--nproc", "2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("run runs/killed: best epoch") == 1  # rank 0 speaks
    full = folder / "runs" / "full"
    assert epoch_records(killed) == epoch_records(full)
    a, b = load_file(killed / "model.safetensors"), load_file(full / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_an_error_in_the_processes_is_one_line_and_leaves_nothing(tmp_path):
    """A global batch of 3 passes the launcher's check (3 processes' worth is not asked) but a
    model with BatchNorm needs 2 rows per process: the processes refuse it, rank 0 alone
    reports, the launcher exits 2 and no run directory is made."""
    cfg = _config(tmp_path / "runs", batch_size=3)
    cfg["model"]["norm"] = "batch"
    (tmp_path / "c.toml").write_text(tomli_w.dumps(cfg))
    proc = _command(tmp_path, "train", "c.toml", "--nproc", "2", "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: train.batch_size = 3 is the global")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.slow
def test_accumulation_in_two_processes_equals_one_process_with_unequal_shares(tmp_path,
                                                                              monkeypatch):
    """accumulate = 2 with 2 processes: the last group of an epoch (50 + 7 rows) splits 25 + 4
    rows to rank 0 and 25 + 3 to rank 1, so the ranks' weights must be their shares of the
    whole group; plain SGD (not scale-free like Adam) shows any misweighting."""
    cfg = _config(tmp_path / "runs", epochs=1, accumulate=2, checkpoint_every=0,
                  optimizer={"name": "sgd", "lr": 0.1})
    (tmp_path / "c.toml").write_text(tomli_w.dumps(cfg))
    proc = _command(tmp_path, "train", "c.toml", "--nproc", "2", "--name", "ddp", "--quiet")
    assert proc.returncode == 0, proc.stderr
    monkeypatch.chdir(tmp_path)
    one = trainwell.fit(cfg, name="one", quiet=True)
    ddp = load_file(tmp_path / "runs" / "ddp" / "model.safetensors")
    ref = load_file(one.run_dir / "model.safetensors")
    assert max(float((ddp[k] - ref[k]).abs().max()) for k in ref) < TOLERANCE

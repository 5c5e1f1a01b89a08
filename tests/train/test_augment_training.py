"""Augmentation in training: training batches only, new draws each epoch, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from killing import epoch_records, train_and_kill
from torch import nn

import trainwell
from trainwell.cli import main
from trainwell.data.augment.augmenter import Augmenter, augment_generator
from trainwell.data.augment.config import AugmentConfig
from trainwell.data.augment.lazy import AugmentedImages, EpochSampler
from trainwell.train.augmented import Augmented
from trainwell.train.objective import Supervised
from trainwell.train.trainer import Trainer


class Recorder(nn.Module):
    """A linear model that keeps every input it sees, apart in training and evaluation."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, k)
        self.train_inputs: list[torch.Tensor] = []
        self.eval_inputs: list[torch.Tensor] = []

    def forward(self, x):
        (self.train_inputs if self.training else self.eval_inputs).append(x.detach().clone())
        return self.lin(x.flatten(1))


def _images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _fit(x, y, val, cfg, epochs=2, seed=0):
    model = Recorder(36, 3)
    aug = Augmenter(AugmentConfig.model_validate(cfg), task="multiclass", n_classes=3)
    step = Augmented(Supervised("cross_entropy"), aug, seed=seed)
    trainer = Trainer(model, step=step, epochs=epochs, batch_size=16, shuffle=False, seed=seed,
                      threads=None)
    trainer.fit((x, y), val)
    return model, trainer


def test_validation_and_test_data_are_never_augmented():
    x, y = _images()
    vx, vy = _images(20, seed=1)
    model, trainer = _fit(x, y, (vx, vy), {"hflip": {"p": 1.0}, "noise": {"std": 0.5}})
    trained = torch.cat(model.train_inputs[1:4])  # after setup's look at the first batch
    assert not torch.allclose(trained, x)  # training batches are augmented
    evaluated = [t for t in model.eval_inputs if len(t) == len(vx)]
    assert evaluated and all(torch.equal(t, vx) for t in evaluated)
    model.eval_inputs.clear()
    test = trainer.evaluate((vx, vy), prefix="test")
    assert "test_accuracy" in test and all(torch.equal(t, vx) for t in model.eval_inputs)
    out, _ = trainer.predict_outputs((vx, vy))
    assert all(torch.equal(t, vx) for t in model.eval_inputs)
    assert out.shape == (20, 3)


def test_augmentation_differs_between_epochs_and_repeats_with_the_seed():
    x, y = _images()
    cfg = {"crop": {"padding": 2}, "mixup": {}}
    model, _ = _fit(x, y, None, cfg, epochs=2)
    seen = model.train_inputs[-6:]  # 3 batches per epoch, two epochs (no shuffling)
    assert not any(torch.equal(seen[i], seen[i + 3]) for i in range(3))
    again, _ = _fit(x, y, None, cfg, epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(seen, again.train_inputs[-6:], strict=True))
    other, _ = _fit(x, y, None, cfg, epochs=2, seed=1)
    assert not torch.equal(seen[0], other.train_inputs[-6])


def test_mixup_trains_on_probability_rows_with_cross_entropy():
    x, y = _images()
    seen = []

    class Spy(Supervised):
        def loss(self, model, batch):
            seen.append(batch[1])
            return super().loss(model, batch)

    aug = Augmenter(AugmentConfig(mixup={"alpha": 1.0}), task="multiclass", n_classes=3)
    trainer = Trainer(nn.Sequential(nn.Flatten(), nn.Linear(36, 3)),
                      step=Augmented(Spy("cross_entropy"), aug, seed=0), epochs=1, batch_size=16,
                      seed=0, threads=None)
    trainer.fit((x, y))
    assert seen and all(t.shape == (len(t), 3) and t.is_floating_point() for t in seen)
    assert any(float(t.max(1).values.min()) < 0.99 for t in seen)  # mixtures, not one-hot rows
    assert trainer.task == "multiclass" and np.isfinite(trainer.history[-1]["train_loss"])


def test_a_lazy_sample_sees_the_same_augmentation_whatever_the_worker_count():
    x, y = _images(12)
    base = torch.utils.data.TensorDataset(x, y)
    aug = Augmenter(AugmentConfig.model_validate(
        {"hflip": {}, "crop": {"padding": 1}, "erasing": {"value": "random"}}))
    data = AugmentedImages(base, aug, seed=3)

    def batches(workers):
        sampler = EpochSampler(12, True, torch.Generator().manual_seed(0))
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(data, batch_size=5, sampler=sampler,
                                             num_workers=workers)
        return [b[0] for b in loader]

    one, two = batches(0), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    # sample i of epoch 2 is augmented by (seed, 2, i), wherever it sits in the order
    first, _ = data[(2, 4)]
    again, _ = data[(2, 4)]
    later, _ = data[(3, 4)]
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert not torch.equal(first, x[4]) or not torch.equal(later, x[4])


def test_a_lazy_run_trains_the_same_with_and_without_workers():
    from trainwell.data.augment.lazy import lazy_loader
    from trainwell.train.augmented import SamplerEpochs

    x, y = _images(20)
    base = torch.utils.data.TensorDataset(x, y)
    aug = Augmenter(AugmentConfig.model_validate({"crop": {"padding": 1}, "cutmix": {}}),
                    task="multiclass", n_classes=3)

    def weights(workers):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
        loader, sampler = lazy_loader(base, aug, 5, batch_size=6, shuffle=True,
                                      num_workers=workers, pin_memory=False)
        step = Augmented(Supervised("cross_entropy"), aug, seed=5, per_sample=False)
        Trainer(model, step=step, epochs=3, seed=0, threads=None,
                callbacks=[SamplerEpochs(sampler)]).fit(loader)
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights(0), weights(2), strict=True))


# ---------------------------------------------------------------------------- runs

DIGITS = {
    "seed": 3,
    "data": {"source": "builtin:digits_images", "split": {"val": 0.2, "test": 0.2}},
    "model": {"arch": "cnn", "channels": [4], "hidden": [16]},
    "train": {"epochs": 3, "batch_size": 128, "checkpoint_every": 1},
    "doctor": {"monitor": False},
    "log": {"report": False},
    "augment": {"hflip": {}, "crop": {"padding": 1}, "affine": {"rotate": 10},
                "cutout": {"size": 3}, "mixup": {"alpha": 0.4}, "cutmix": {"p": 0.5}},
}

def _kill_and_resume(cfg, tmp_path, runs_dir):
    train_and_kill(cfg, tmp_path, 2)  # the checkpoint of epoch 1 exists
    killed = runs_dir / "killed"
    assert len(epoch_records(killed)) == 2
    resumed = trainwell.fit(resume=killed, quiet=True)  # the kill was real; resuming in-process
    assert resumed.history[0]["epoch"] == 1 and resumed.status == "completed"
    full = trainwell.fit(cfg, name="full", quiet=True)
    assert epoch_records(killed) == epoch_records(full.run_dir)
    assert json.loads((killed / "results.json").read_text())["test"] == full.results["test"]
    return killed, full


@pytest.mark.slow
def test_sigkill_then_resume_with_mixup_matches_an_uninterrupted_run(runs_dir, tmp_path):
    killed, full = _kill_and_resume(DIGITS, tmp_path, runs_dir)
    assert (killed / "augment.json").is_file() and (killed / "augment_grid.png").is_file()
    assert full.history[0]["train_loss"] > 0


def _folder(root, classes=3, per_class=14, size=8):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            arr[:, :, k] += np.uint8(120)  # class k is brighter in channel k
            Image.fromarray(arr).save(root / f"c{k}" / f"{i:02d}.png")
    return root


@pytest.mark.slow
def test_sigkill_then_resume_on_a_lazy_image_folder_matches_an_uninterrupted_run(
        runs_dir, tmp_path):
    folder = _folder(tmp_path / "imgs")
    cfg = {
        "seed": 1,
        "data": {"source": f"images:{folder}", "images": {"memory_mb": 0.001},
                 "split": {"val": 0.2, "test": 0.2}},
        "model": {"arch": "cnn", "channels": [4], "hidden": [8]},
        "train": {"epochs": 3, "batch_size": 8, "checkpoint_every": 1, "num_workers": 0},
        "doctor": {"monitor": False},
        "log": {"report": False},
        "augment": {"hflip": {}, "crop": {"padding": 2}, "color": {"brightness": 0.3,
                    "saturation": 0.3}, "pca_color": {}, "erasing": {}, "mixup": {}},
    }
    killed, full = _kill_and_resume(cfg, tmp_path, runs_dir)
    assert json.loads((killed / "data.json").read_text())["input_shape"] == [3, 8, 8]
    saved = trainwell.data.augment.Augmenter.load(AugmentConfig.model_validate(cfg["augment"]),
                                                  killed)
    assert saved.context.pca_values is not None and saved.context.pca_values.shape == (3,)


def test_train_on_an_image_folder_writes_the_grid_into_the_report(runs_dir, tmp_path, capsys):
    import tomli_w

    folder = _folder(tmp_path / "imgs", per_class=8)
    cfg = {
        "data": {"source": f"images:{folder}", "split": {"val": 0.25, "test": 0.25}},
        "model": {"arch": "cnn", "channels": [4], "hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8},
        "doctor": {"monitor": False},
        "augment": {"hflip": {}, "affine": {"translate": 0.1, "scale": [0.9, 1.1]},
                    "pca_color": {"std": 0.2}, "cutmix": {}},
    }
    path = tmp_path / "folder.toml"
    path.write_text(tomli_w.dumps(cfg))
    assert main(["train", str(path), "--quiet", "--name", "folder"]) == 0
    run = runs_dir / "folder"
    assert (run / "augment_grid.png").read_bytes().startswith(b"\x89PNG")
    html = (run / "report.html").read_text()
    assert 'id="augment-grid"' in html and "What the model is fed" in html
    assert json.loads((run / "augment.json").read_text())["ops"] == [
        "hflip", "affine", "pca_color", "cutmix"]


def test_describe_prints_the_operations_and_writes_the_augmented_grid(tmp_path, capsys,
                                                                      monkeypatch):
    import tomli_w

    monkeypatch.chdir(tmp_path)
    cfg = {"data": {"source": "builtin:digits_images"},
           "augment": {"crop": {"padding": 2}, "mixup": {}}}
    path = tmp_path / "digits.toml"
    path.write_text(tomli_w.dumps(cfg))
    assert main(["data", "describe", str(path), "--augment-grid", "seen.png"]) == 0
    out = capsys.readouterr().out
    assert "augmentation (training split only, in this order):" in out
    assert "crop" in out and "mixup" in out and "seen.png" in out
    assert (tmp_path / "seen.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "digits-batch.png").is_file()


def test_the_grid_writes_mixtures_under_mixed_samples():
    from trainwell.data import prepare
    from trainwell.data.augment.grid import augmented_views, label_text
    from trainwell.data.config import DataConfig

    data = prepare(DataConfig(source="builtin:digits_images"), 0)
    aug = Augmenter.fit(AugmentConfig(mixup={"alpha": 1.0}), data)
    views = augmented_views(aug, data.train.X[:16], data.train.y[:16], seed=0, epochs=2)
    texts = [label_text(v, data.classes, data.task) for v in views[0][1]]
    assert any(" + " in t for t in texts)
    assert label_text(torch.tensor(3), data.classes, data.task) == "3"
    g = augment_generator(0, 1, 0)
    x, y = aug(data.train.X[:16], data.train.y[:16], g)
    assert torch.equal(x, views[0][0]) and torch.equal(y, views[0][1])


def test_a_damaged_augment_file_is_named_when_resuming(runs_dir):
    class Crash:
        def after_epoch(self, trainer):
            if trainer.epoch == 2:  # the checkpoint of epoch 1 exists
                raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):
        trainwell.fit(DIGITS, name="crashed", quiet=True, callbacks=[Crash()])
    saved = runs_dir / "crashed" / "augment.safetensors"
    saved.write_bytes(saved.read_bytes()[:20])
    with pytest.raises(trainwell.errors.RunError, match="augment.safetensors"):
        trainwell.fit(resume=runs_dir / "crashed", quiet=True)

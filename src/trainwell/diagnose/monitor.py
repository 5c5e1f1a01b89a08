"""``TrainingMonitor``: cheap in-training statistics (``stats.jsonl``) and a verdict at the end."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwell.diagnose.curves import verdict
from trainwell.diagnose.report import Finding, json_safe
from trainwell.diagnose.stats import WEIGHTED, kind_of, layer_map, layer_stats

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

log = logging.getLogger(__name__)
FIELDS = ("act_mean", "act_std", "dead_frac", "sat_frac", "grad_norm", "update_ratio")


class TrainingMonitor:
    """A trainer callback that samples activation and gradient statistics every N steps.

    On a sampled step it attaches forward hooks before the batch and removes them after the
    loss, records per-layer gradient norms after the backward pass and the update/weight ratio
    ``||W_new - W_old|| / ||W_old||`` after the step; other steps cost one integer test (and,
    on the CPU, a finiteness test of the loss to catch the first NaN step). After each epoch
    it writes one line of ``stats.jsonl``; after the fit it gives :meth:`verdict` on the curves.

    Args:
        run_dir: where ``stats.jsonl`` goes (None: keep the records in memory only).
        every: sample every this many steps.
        write_doctor: after the fit, add the curve verdict and the activation statistics to
            ``run_dir/doctor.json`` (created if absent).
        class_counts: the training split's count per class, for the verdict on imbalanced
            classes (:func:`~trainwell.diagnose.curves.verdict`); default: the ``train``
            counts of ``run_dir/data.json`` when it has them.

    Example:
        >>> mon = TrainingMonitor(every=10)
        >>> mon.every
        10
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        every: int = 50,
        write_doctor: bool = True,
        class_counts: list[int] | None = None,
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"TrainingMonitor.every must be an int >= 1; got {every!r}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.every = every
        self.write_doctor = write_doctor
        self.class_counts = class_counts
        self.records: list[dict[str, Any]] = []
        self.first_sample: dict[str, Any] | None = None
        self.last_sample: dict[str, Any] | None = None
        self.initial_loss: float | None = None
        self.divergence: dict[str, Any] | None = None
        self._epoch: list[dict[str, dict[str, float | None]]] = []
        self._handles: list[Any] = []
        self._acts: dict[str, dict[str, Any]] = {}
        self._sampled = False
        self._before: dict[str, torch.Tensor] = {}
        self._current: dict[str, dict[str, float | None]] = {}
        self._map: dict[str, tuple[nn.Module, str]] = {}

    # ------------------------------------------------------------------ events

    def before_fit(self, trainer: Trainer) -> None:
        self._map = layer_map(trainer.model)
        if self.class_counts is None and self.run_dir is not None:
            self.class_counts = _train_class_counts(self.run_dir / "data.json")
        if self.run_dir is not None and trainer.epoch > 0:  # resumed: keep the checkpoint's epochs
            from trainwell.runs import MetricsLog

            log = MetricsLog(self.run_dir / "stats.jsonl")
            log.truncate_to(trainer.epoch)
            self._restore_start(log)

    def _restore_start(self, log: Any) -> None:
        """What was measured at the start of the run (the loss at step 0, the first sampled
        statistics), kept in the first line of ``stats.jsonl``: a resumed run's verdict and
        ``doctor.json`` say what an uninterrupted run's say, not what step 101 shows."""
        first = next(iter(log.read()), None) if log.path.exists() else None
        start = first.get("start") if isinstance(first, dict) else None
        if isinstance(start, dict):
            loss = start.get("initial_loss")
            self.initial_loss = float(loss) if isinstance(loss, (int, float)) else None
            sample = start.get("first_sample")
            self.first_sample = sample if isinstance(sample, dict) else None

    def before_epoch(self, trainer: Trainer) -> None:
        self._epoch = []

    def before_batch(self, trainer: Trainer) -> None:
        self._sampled = trainer.step % self.every == 0
        if not self._sampled:
            return
        self._acts = {}
        for mod, label in self._map.values():
            self._handles.append(mod.register_forward_hook(self._hook(label, kind_of(mod))))

    def _hook(self, label: str, kind: str):
        def hook(_m: nn.Module, _i: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and label not in self._acts:
                self._acts[label] = layer_stats(output, kind)

        return hook

    def after_loss(self, trainer: Trainer) -> None:
        if self._handles:
            for h in self._handles:
                h.remove()
            self._handles = []
        loss = trainer.loss
        if loss is None:
            return
        if self._sampled or loss.device.type == "cpu":  # free on the CPU; one sync on a GPU
            value = loss.item()
            if self.initial_loss is None and trainer.step == 0:
                self.initial_loss = value
            if not math.isfinite(value) and self.divergence is None:
                self.divergence = self._diagnose(trainer)
        if self._sampled:
            self._current = {
                label: {k: s.get(k) for k in FIELDS[:4]} for label, s in self._acts.items()
            }

    def after_backward(self, trainer: Trainer) -> None:
        if not self._sampled:
            return
        self._before = {}
        for name, mod in self._weighted(trainer.model):
            weight = getattr(mod, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            entry = self._current.setdefault(name, {})
            g = weight.grad
            entry["grad_norm"] = g.detach().float().norm().item() if g is not None else None
            self._before[name] = weight.detach().clone()

    def after_step(self, trainer: Trainer) -> None:
        if not self._sampled:
            return
        mods = dict(trainer.model.named_modules())
        for name, old in self._before.items():
            new = mods[name].weight.detach()
            denom = old.float().norm().item()
            ratio = (new.float() - old.float()).norm().item() / denom if denom > 0 else None
            self._current.setdefault(name, {})["update_ratio"] = ratio
        self._before = {}
        sample = {"step": trainer.step, "layers": self._current}
        if self.first_sample is None:
            self.first_sample = sample
        self.last_sample = sample
        self._epoch.append(self._current)
        self._current = {}
        self._sampled = False

    def after_epoch(self, trainer: Trainer) -> None:
        record: dict[str, Any] = {
            "epoch": trainer.epoch, "step": trainer.step, "layers": _mean_layers(self._epoch)
        }
        if trainer.epoch == 1:  # kept for a resumed run (see _restore_start)
            record["start"] = {"initial_loss": self.initial_loss,
                               "first_sample": json_safe(self.first_sample)}
        self.records.append(record)
        if self.run_dir is not None:
            from trainwell.runs import MetricsLog

            self.run_dir.mkdir(parents=True, exist_ok=True)
            MetricsLog(self.run_dir / "stats.jsonl").append(record)

    def end(self, trainer: Trainer) -> None:
        """The trainer's last event, after any ending (a divergence too): the verdict."""
        self.finish(trainer)

    # ------------------------------------------------------------------ results

    def verdict(self, history: list[dict[str, Any]] | None = None) -> Finding:
        """The verdict on the curves: diverged, underfitting, overfitting, a good fit, or (on
        imbalanced classes) a model that answers the majority class."""
        return verdict(history or [], initial_loss=self.initial_loss, divergence=self.divergence,
                       class_counts=self.class_counts)

    def activation_stats(self) -> dict[str, Any]:
        """``{"init": first sampled step, "end": last sampled step}`` (doctor.json's shape)."""
        return {"init": self.first_sample or {}, "end": self.last_sample or {}}

    def finish(self, trainer: Trainer) -> Finding:
        """Give the verdict; add it to ``run_dir/doctor.json`` (the ``end`` event calls it)."""
        if self._handles:
            for h in self._handles:
                h.remove()
            self._handles = []
        if trainer.diverged and self.divergence is None:
            self.divergence = {"step": trainer.step, "epoch": trainer.epoch}
        found = self.verdict(list(trainer.history))
        if self.run_dir is not None and self.write_doctor:
            self._write_doctor(self.run_dir / "doctor.json", found)
        return found

    def _write_doctor(self, path: Path, found: Finding) -> None:
        from trainwell.runs import read_json, write_json_atomic

        doc = read_json(path) if path.exists() else {"findings": [], "activation_stats": {}}
        doc["findings"] = [f for f in doc.get("findings", []) if f.get("check") != found.check]
        doc["findings"].append(found.to_dict())
        stats = doc.setdefault("activation_stats", {})
        stats.setdefault("init", json_safe(self.activation_stats()["init"]))
        stats["end"] = json_safe(self.activation_stats()["end"])
        write_json_atomic(path, doc)

    # ------------------------------------------------------------------ divergence

    @staticmethod
    def _weighted(model: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED) and n]

    def _diagnose(self, trainer: Trainer) -> dict[str, Any]:
        """Which step, which layer first produced NaN/inf, and which parameters are non-finite."""
        model = trainer.model
        info: dict[str, Any] = {
            "step": trainer.step + 1,
            "epoch": trainer.epoch,
            "lr": trainer.lr,
        }
        bad_params = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        info["nonfinite_params"] = bad_params[:10]
        first: list[str] = []
        handles = []
        for name, mod in model.named_modules():
            if name and not list(mod.children()):

                def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                    if (
                        not first
                        and isinstance(out, torch.Tensor)
                        and not bool(torch.isfinite(out).all())
                    ):
                        first.append(name)

                handles.append(mod.register_forward_hook(hook))
        batch = trainer.batch
        try:
            if batch is not None:
                with torch.no_grad():
                    model(batch[0])
        except Exception:  # the diagnosis must never break the trainer
            log.debug("divergence diagnosis forward failed", exc_info=True)
        finally:
            for h in handles:
                h.remove()
        info["first_layer"] = (
            first[0] if first else ("the loss" if not bad_params else bad_params[0])
        )
        log.warning(
            "loss became non-finite at step %s; first non-finite layer: %s",
            info["step"],
            info["first_layer"],
        )
        return info


def _train_class_counts(path: Path) -> list[int] | None:
    """The training split's class counts that ``data.json`` holds (None: absent, regression,
    several heads, or not a list of counts)."""
    if not path.is_file():
        return None
    from trainwell.errors import RunError
    from trainwell.runs import read_json

    try:
        counts = (read_json(path).get("class_counts") or {}).get("train")
    except (RunError, AttributeError):
        return None
    if isinstance(counts, list) and all(isinstance(c, int) for c in counts):
        return counts
    return None


def _mean_layers(samples: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Average each layer's sampled statistics over the epoch (None where never measured)."""
    names: list[str] = []
    for s in samples:
        names += [n for n in s if n not in names]
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        entry: dict[str, Any] = {}
        for k in FIELDS:
            vals = [s[n][k] for s in samples if n in s and isinstance(s[n].get(k), (int, float))]
            vals = [v for v in vals if math.isfinite(v)] or vals
            entry[k] = sum(vals) / len(vals) if vals else None
        out[n] = entry
    return out

"""Transfer learning (lecture 002): start from pretrained weights, freeze, probe or fine-tune.

Three pieces usable on any ``nn.Module``:

* :func:`load_matching_` copies the tensors of a checkpoint whose name and shape match the
  model's and returns a :class:`TransferReport` (loaded, new, skipped); nothing matching is an
  error naming the mismatch.
* :func:`freeze_` freezes the layers up to and including one (or the whole backbone: every layer
  but the last): their parameters stop getting gradients, and their BatchNorm layers stay in
  eval mode (running statistics untouched) even while the model trains.
* :func:`read_weights` reads a checkpoint: a trainwell run directory, a ``.safetensors`` file, a
  torch state-dict file (``torch.load(weights_only=True)``: a file that needs more than tensors
  is refused, never run) or ``pretrained:<name>``, a checkpoint shipped in the package.

:func:`plan_transfer` is what ``[model] init_from`` adds to a run: the checks against the new data
(input shape, label set), the head, the mode (``probe``, ``finetune``, ``probe_then_finetune``
or ``auto``, which applies lecture 002's table of dataset size x similarity), the optimizer's
parameter groups (``lr_mult`` for the pretrained part) and the callback that freezes and
unfreezes at each epoch.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwell.errors import ConfigError, DataError, RunError
from trainwell.nn.parts import head_layer, layers, tensor_names
from trainwell.train.callbacks import Callback

logger = logging.getLogger(__name__)

PRETRAINED_PREFIX = "pretrained:"
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# ---------------------------------------------------------------------------- reading weights


@dataclass
class Weights:
    """A checkpoint's tensors and what is known of the model that made them.

    Attributes:
        tensors: ``{name: tensor}``.
        origin: how to name it in messages (the path or ``pretrained:<name>``).
        input_shape: the per-sample input shape it was trained on, if known.
        task, classes: the task and label set of its last layer, if known.
        model: its ``[model]`` section (architecture), if known.
    """

    tensors: dict[str, torch.Tensor]
    origin: str
    input_shape: list[int] | None = None
    task: str | None = None
    classes: list[Any] | None = None
    model: dict[str, Any] | None = None
    #: its ``data.preprocess`` (None: the default steps), or ``"unknown"``
    preprocess: Any = "unknown"


def list_pretrained() -> list[str]:
    """The names of the checkpoints shipped in the package (``pretrained:<name>``)."""
    folder = resources.files("trainwell.after") / "pretrained"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir()
                  if p.name.endswith(".safetensors"))


def pretrained_path(name: str) -> Path:
    """The file of the shipped checkpoint ``name``; a ConfigError listing the names otherwise."""
    from trainwell.registry import unknown_name_message

    names = list_pretrained()
    if name not in names:
        raise ConfigError("model.init_from: " + unknown_name_message(
            "pretrained checkpoint", name, names))
    return Path(str(resources.files("trainwell.after") / "pretrained" / f"{name}.safetensors"))


def _sidecar(weights: Weights, path: Path) -> None:
    """Fill ``weights`` from the JSON beside a safetensors file (``<stem>.json``), if any."""
    from trainwell.runs import read_json

    side = path.with_suffix(".json")
    if not side.is_file():
        return
    info = read_json(side)
    weights.input_shape = info.get("input_shape")
    weights.task = info.get("task")
    weights.classes = info.get("classes")
    weights.model = info.get("model")
    if "preprocess" in info:
        weights.preprocess = info["preprocess"]


def _read_run(path: Path) -> Weights:
    from trainwell.runs import read_data_info, read_safetensors

    file = path / "model.safetensors"
    if not file.is_file() and (path / "ensemble.json").is_file():
        raise RunError(f"model.init_from: {path} is an ensemble directory, not a run; give one "
                       f"of its members, e.g. {path / 'members' / '0'}")
    if not file.is_file() and (path / "study.json").is_file():
        raise RunError(f"model.init_from: {path} is a study directory, not a run; give one of "
                       f"its trials, e.g. {path / 'trials' / '0'} (study.json names the best)")
    if not file.is_file():
        what = "an unfinished run (no model.safetensors yet)" if (
            path / "config.toml").is_file() else "not a run directory (no model.safetensors)"
        raise RunError(f"model.init_from: {path} is {what}")
    info = read_data_info(path)
    model, preprocess = None, "unknown"
    if (path / "config.toml").is_file():
        import tomllib

        try:
            config = tomllib.loads((path / "config.toml").read_text("utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            config = {}
        model = config.get("model")
        if isinstance(config.get("data"), dict):
            preprocess = config["data"].get("preprocess")
    return Weights(read_safetensors(file), str(path), list(info["input_shape"]),
                   info.get("task"), info.get("classes"), model, preprocess)


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return dict(obj)
    return None


def _read_torch(path: Path) -> Weights:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is long and coloured: keep the name of what it would have run
        named = re.search(r"GLOBAL ([\w.]+)", re.sub(r"\x1b\[[0-9;]*m", "", str(exc)))
        which = f" (it names {named.group(1)})" if named else ""
        raise RunError(
            f"model.init_from: {path} holds Python objects beyond tensors{which}, which loading "
            "would have to run as code; trainwell reads weights only and refused it. Save the "
            "weights alone, e.g. torch.save(model.state_dict(), path), or as safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RunError(f"model.init_from: {path} is not a torch weights file that can be read: "
                       f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc}"
                       ) from None
    tensors = _tensor_dict(obj)
    if tensors is None and isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            tensors = _tensor_dict(obj.get(key))
            if tensors is not None:
                break
    if tensors is None:
        raise RunError(f"model.init_from: {path} holds a {type(obj).__name__}, not a state dict "
                       "(a mapping of names to tensors, as model.state_dict() returns)")
    return Weights(tensors, str(path))


def read_weights(source: str | Path | Mapping[str, torch.Tensor] | nn.Module) -> Weights:
    """The tensors of a checkpoint, with what is known of the model and data that made them.

    Args:
        source: a run directory, a ``.safetensors`` file (a ``<stem>.json`` beside it may name
            its input shape, task, classes and ``model`` section), a torch state-dict file,
            ``pretrained:<name>``, a state dict or a module.

    Raises:
        RunError: the path is missing, not a run / weights file, or a file that would run code.
        ConfigError: an unknown ``pretrained:`` name (the names are listed).
    """
    if isinstance(source, nn.Module):
        return Weights(dict(source.state_dict()), type(source).__name__)
    if isinstance(source, Mapping):
        tensors = _tensor_dict(source)
        if tensors is None:
            raise RunError("load_matching_: the state dict should map names to tensors")
        return Weights(tensors, "the state dict")
    text = str(source)
    if text.startswith(PRETRAINED_PREFIX):
        name = text[len(PRETRAINED_PREFIX):]
        path = pretrained_path(name)
        weights = _read_safetensors(path, text)
        return weights
    path = Path(text).expanduser()
    if not path.exists():
        raise RunError(f"model.init_from: {path} does not exist (give a run directory, a "
                       ".safetensors or torch weights file, or pretrained:<name>; shipped: "
                       f"{', '.join(list_pretrained()) or 'none'})")
    if path.is_dir():
        return _read_run(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path, str(path))
    return _read_torch(path)


def _read_safetensors(path: Path, origin: str) -> Weights:
    from trainwell.runs import read_safetensors

    try:
        tensors = read_safetensors(path)
    except RunError as exc:
        raise RunError(f"model.init_from: {exc}") from None
    weights = Weights(tensors, origin)
    _sidecar(weights, path)
    return weights


# ---------------------------------------------------------------------------- matching


@dataclass
class TransferReport:
    """What :func:`load_matching_` did.

    Attributes:
        origin: the checkpoint.
        loaded: the model's tensors copied from it.
        new: the model's tensors it did not set (a new head, layers it lacks).
        skipped: ``{name: why}`` for the checkpoint's tensors not used.
    """

    origin: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "loaded": self.loaded, "new": self.new,
                "skipped": self.skipped}

    def summary(self) -> str:
        """A few lines for people: counts, then the names."""
        lines = [f"transfer from {self.origin}: {len(self.loaded)} tensors loaded, "
                 f"{len(self.new)} new, {len(self.skipped)} skipped"]
        if self.loaded:
            lines.append("  loaded: " + ", ".join(_layers_of(self.loaded)))
        if self.new:
            lines.append("  new:    " + ", ".join(_layers_of(self.new)))
        for name, why in list(self.skipped.items())[:8]:
            lines.append(f"  skipped {name}: {why}")
        if len(self.skipped) > 8:
            lines.append(f"  ... and {len(self.skipped) - 8} more skipped")
        return "\n".join(lines)


def _layers_of(names: list[str]) -> list[str]:
    """Tensor names grouped by layer: ``conv1.weight, conv1.bias`` -> ``conv1``."""
    out: list[str] = []
    for n in names:
        layer = n.rsplit(".", 1)[0] if "." in n else n
        if layer not in out:
            out.append(layer)
    return out


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _architecture(model: Mapping[str, Any] | None) -> str:
    if not model:
        return ""
    keys = ("arch", "channels", "hidden", "norm", "widths", "blocks", "global_pool")
    parts = [f"{k} = {model[k]!r}" for k in keys if k in model]
    return f"; it was made by [model] {', '.join(parts)}" if parts else ""


def load_matching_(model: nn.Module,
                   state_or_path: str | Path | Mapping[str, torch.Tensor] | nn.Module | Weights,
                   *, exclude: Iterable[str] = ()) -> TransferReport:
    """Copy into ``model`` every tensor of a checkpoint whose name and shape match; in place.

    Args:
        model: any module.
        state_or_path: what :func:`read_weights` reads (a path, ``pretrained:<name>``, a state
            dict, a module) or a :class:`Weights`.
        exclude: model tensor names never loaded (a new head).

    Returns:
        The :class:`TransferReport`: loaded, new and skipped tensors.

    Raises:
        RunError: no parameter matches; the first shape mismatch (or the names on both sides)
            is named.

    Example:
        >>> src = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> dst = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))
        >>> report = load_matching_(dst, src.state_dict())
        >>> report.loaded, report.new
        (['0.weight', '0.bias'], ['2.weight', '2.bias'])
    """
    weights = state_or_path if isinstance(state_or_path, Weights) else read_weights(state_or_path)
    own = model.state_dict()
    skip = set(exclude)
    report = TransferReport(weights.origin)
    take: dict[str, torch.Tensor] = {}
    first_mismatch = None
    for name, tensor in weights.tensors.items():
        if name in skip:
            report.skipped[name] = "the model's new head"
        elif name not in own:
            report.skipped[name] = "not in the model"
        elif _shape(tensor) != _shape(own[name]):
            report.skipped[name] = (f"shape {_shape(tensor)}; the model's is "
                                    f"{_shape(own[name])}")
            first_mismatch = first_mismatch or name
        else:
            take[name] = tensor
    params = {n for n, _ in model.named_parameters()}
    if not any(n in params for n in take):  # buffers alone (a BatchNorm counter) are no transfer
        if first_mismatch is not None:
            why = (f"its {first_mismatch!r} has shape {_shape(weights.tensors[first_mismatch])}"
                   f" where the model's is {_shape(own[first_mismatch])}")
        else:
            theirs = ", ".join(repr(n) for n in list(weights.tensors)[:3])
            mine = ", ".join(repr(n) for n in list(own)[:3])
            why = f"none of its names ({theirs} ...) is one of the model's ({mine} ...)"
        raise RunError(f"nothing in {weights.origin} fits the model: {why}"
                       f"{_architecture(weights.model)}")
    model.load_state_dict(take, strict=False)
    report.loaded = [n for n in own if n in take]
    report.new = [n for n in own if n not in take]
    return report


# ---------------------------------------------------------------------------- freezing

#: the models :func:`freeze_` froze, and the BatchNorm hooks that keep their frozen layers in
#: eval mode (removed by :func:`unfreeze_`)
_FROZEN: weakref.WeakKeyDictionary[nn.Module, list[Any]] = weakref.WeakKeyDictionary()


def _keep_eval(module: nn.Module, _inputs: tuple[Any, ...]) -> None:
    """A frozen BatchNorm normalizes with its running statistics and never updates them."""
    if module.training:
        module.train(False)


def layer_names(model: nn.Module) -> list[str]:
    """The names :func:`freeze_` accepts: each layer holding parameters, in order."""
    return [n for n, m in layers(model) if n and any(True for _ in m.parameters(recurse=False))]


def _frozen_layers(model: nn.Module, up_to: str) -> list[str]:
    names = [n for n, _ in layers(model) if n]
    if up_to == "none":
        return []
    if up_to == "backbone":
        head, _ = head_layer(model)
        return [n for n in names if n != head and not n.startswith(head + ".")]
    hits = [i for i, n in enumerate(names)
            if n == up_to or n.startswith(up_to + ".") or n.startswith(up_to + "_")]
    if not hits:
        raise ConfigError(
            f"model.freeze = {up_to!r} names no layer of the model; its layers, in order: "
            f"{', '.join(layer_names(model))} (or 'backbone', 'none')"
        )
    return names[: max(hits) + 1]


def unfreeze_(model: nn.Module) -> None:
    """Undo :func:`freeze_`: every parameter trainable, BatchNorm free to follow ``train()``."""
    for handle in _FROZEN.pop(model, []):
        handle.remove()
    for p in model.parameters():
        p.requires_grad_(True)


def freeze_(model: nn.Module, up_to: str = "backbone") -> list[str]:
    """Freeze the layers of ``model`` up to and including ``up_to``; in place.

    Args:
        model: any module.
        up_to: ``"backbone"`` (every layer but the head, the last one holding parameters),
            ``"none"`` (unfreeze all), or a layer name (``"conv2"``; with trainwell's
            models, the layer's own norm ``conv2_norm`` comes with it).

    Frozen parameters get ``requires_grad = False``; a frozen BatchNorm layer stays in eval mode
    while the model trains (a forward pre-hook puts it back after every ``model.train()``), so
    its running statistics stay bit for bit as loaded. A second call replaces the first.

    Returns:
        The names of the frozen layers.

    Raises:
        ConfigError: ``up_to`` names no layer (the layer names are listed).

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> freeze_(m, "backbone")
        ['0', '1']
        >>> [p.requires_grad for p in m.parameters()]
        [False, False, False, False, True, True]
    """
    frozen = _frozen_layers(model, up_to)
    unfreeze_(model)
    handles = []
    for name in frozen:
        module = model.get_submodule(name)
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(module, _BATCH_NORMS):
            module.train(False)
            handles.append(module.register_forward_pre_hook(_keep_eval))
    if handles:
        _FROZEN[model] = handles
    return frozen


# ---------------------------------------------------------------------------- a run's plan

#: lecture 002's table: (little data?, similar?) -> (mode, what the cell says)
TABLE: dict[tuple[bool, bool], tuple[str, str]] = {
    (True, True): ("probe", "very little data, very similar dataset: use a linear classifier "
                            "on the top layer"),
    (False, True): ("probe_then_finetune", "quite a lot of data, very similar dataset: "
                                           "fine-tune a few layers (the head first, then all)"),
    (True, False): ("scratch", "very little data, very different dataset: you're in trouble; "
                               "the pretrained features do no better than random ones, so the "
                               "run trains from scratch"),
    (False, False): ("finetune", "quite a lot of data, very different dataset: fine-tune a "
                                 "larger number of layers (all of them)"),
}
#: very little data of unknown similarity (a class with one labelled row: nothing to hold out)
UNMEASURED: tuple[str, str] = (
    "probe_then_finetune", "very little data, similarity unknown: between the row's two cells, "
    "the head first on the pretrained features (the similar cell's linear classifier), then "
    "every layer, which can move away from a source that does not fit")


@dataclass
class TransferPlan:
    """What ``[model] init_from`` does to one run (saved as ``transfer.json``).

    Attributes:
        origin: the checkpoint.
        requested: ``model.transfer`` as configured.
        mode: what runs: ``probe``, ``finetune``, ``probe_then_finetune`` or ``scratch``
            (``auto`` found the source no help).
        head: ``new`` or ``keep``.
        freeze: what stays frozen while every layer trains (finetune phase).
        lr_mult: the learning-rate multiplier of the loaded tensors.
        probe_epochs: epochs that train the head alone (probe: all of them).
        report: the load report (None for ``scratch``).
        auto: the measurement and the cell ``auto`` chose, or None.
    """

    origin: str
    requested: str
    mode: str
    head: str
    freeze: str
    lr_mult: float
    probe_epochs: int
    report: TransferReport | None = None
    auto: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: the model at its scratch initialization, before loading (the doctor's baseline)
    scratch: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "requested": self.requested, "mode": self.mode,
                "head": self.head, "freeze": self.freeze, "lr_mult": self.lr_mult,
                "probe_epochs": self.probe_epochs,
                "report": self.report.to_dict() if self.report else None, "auto": self.auto,
                "notes": self.notes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransferPlan:
        rep = d.get("report")
        report = TransferReport(rep["origin"], list(rep["loaded"]), list(rep["new"]),
                                dict(rep["skipped"])) if rep else None
        return cls(d["origin"], d["requested"], d["mode"], d["head"], d["freeze"],
                   float(d["lr_mult"]), int(d["probe_epochs"]), report, d.get("auto"),
                   list(d.get("notes") or []))

    def summary(self) -> str:
        lines = []
        if self.auto is not None:
            lines.append(f"transfer auto: {self.auto['reason']}")
        if self.report is not None:
            lines.append(self.report.summary())
        mode = {"probe": "linear probe (backbone frozen)",
                "finetune": "fine-tune" + ("" if self.freeze == "none"
                                           else f" (frozen up to {self.freeze})"),
                "probe_then_finetune": f"probe for {self.probe_epochs} epoch"
                                       f"{'s' if self.probe_epochs != 1 else ''}, then fine-tune",
                "scratch": "from scratch (the pretrained weights are not used)"}[self.mode]
        extra = f", lr_mult {self.lr_mult:g}" if self.mode in (
            "finetune", "probe_then_finetune") and self.lr_mult != 1 else ""
        lines.append(f"transfer mode: {mode}{extra}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def frozen_at(self, epoch: int) -> str:
        """What is frozen during ``epoch`` (1-based)."""
        if self.mode == "probe" or (self.mode == "probe_then_finetune"
                                    and epoch <= self.probe_epochs):
            return "backbone"
        return "none" if self.mode == "scratch" else self.freeze

    def param_groups(self, model: nn.Module, lr: float) -> list[dict[str, Any]]:
        """The optimizer's groups: new tensors at ``lr``, loaded ones at ``lr * lr_mult``."""
        loaded = set(self.report.loaded) if self.report else set()
        new_params: list[nn.Parameter] = []
        old_params: list[nn.Parameter] = []
        for name, p in model.named_parameters():
            (old_params if name in loaded else new_params).append(p)
        groups = [{"params": new_params, "lr": lr}]
        if old_params:
            groups.append({"params": old_params, "lr": lr * self.lr_mult})
        return [g for g in groups if g["params"]]

    def callbacks(self) -> list[Callback]:
        return [] if self.mode == "scratch" else [TransferPhases(self)]


class TransferPhases(Callback):
    """Freezes what the plan says before each epoch: the backbone while probing, then
    ``freeze`` (a resumed run gets the same phase from its epoch)."""

    def __init__(self, plan: TransferPlan) -> None:
        self.plan = plan

    def before_epoch(self, trainer: Any) -> None:
        freeze_(trainer.model, self.plan.frozen_at(trainer.epoch))


def zero_head_(model: nn.Module) -> str:
    """Set the head's parameters to zero; returns its name.

    A new head on pretrained features starts from zero rather than random weights: trained by
    gradient descent from zero, a linear layer stays in the span of the features it was shown,
    as a regularized linear probe does, instead of keeping random weights in every direction
    that a few labelled rows never reach (on digits 5-9 from one image per class, SGD from zero
    matched scikit-learn's logistic regression on the same features, 52%). The features below
    it differ per class, so the zero start breaks no symmetry that matters.
    """
    name, head = head_layer(model)
    with torch.no_grad():
        for p in head.parameters(recurse=False):
            p.zero_()
    return name


def _classes_match(a: list[Any] | None, b: list[Any] | None) -> bool:
    return [str(x) for x in a or []] == [str(x) for x in b or []]


def check_fit(weights: Weights, prepared: Any, head: str) -> None:
    """The checkpoint against the new data: its input shape, and with ``head = "keep"`` its
    task and label set."""
    shape = [int(s) for s in prepared.input_shape]
    if weights.input_shape is not None and [int(s) for s in weights.input_shape] != shape:
        raise DataError(
            f"model.init_from: {weights.origin} was trained on inputs of shape "
            f"{tuple(weights.input_shape)}; this data's are {tuple(shape)}; transfer needs the "
            "same input shape (for images, data.images.size and mode set it)"
        )
    if head == "keep" and weights.task is not None and (
            weights.task != prepared.task or not _classes_match(weights.classes, prepared.classes)):
        raise ConfigError(
            f"model.head = 'keep' keeps the last layer of {weights.origin}, which learned "
            f"{weights.task} {_label_set(weights.classes)}; this data is {prepared.task} "
            f"{_label_set(prepared.classes)}; use head = \"new\" for a new label set"
        )


def _label_set(classes: list[Any] | None) -> str:
    if classes is None:
        return "(no classes)"
    shown = ", ".join(str(c) for c in classes[:10])
    return f"with classes [{shown}{', ...' if len(classes) > 10 else ''}]"


def _rows_per_class(y: torch.Tensor, task: str) -> int:
    if task == "regression" or not len(y):
        return len(y)
    counts = torch.bincount(y.long().reshape(-1))
    return int(counts[counts > 0].min())


def _auto(model: nn.Module, scratch: nn.Module, prepared: Any, rows_threshold: int,
          seed: int) -> tuple[str, dict[str, Any]]:
    """Lecture 002's 2x2 table from the labelled rows per class and a measured similarity."""
    from trainwell.diagnose.transfer_check import probe_scores

    X, y = prepared.train.X, prepared.train.y
    rows = _rows_per_class(y, prepared.task)
    little = rows < rows_threshold
    scores: dict[str, Any] = {}
    if prepared.task != "regression" and isinstance(X, torch.Tensor):
        scores = probe_scores({"pretrained": model, "scratch": scratch}, X, y, seed=seed)
    pre, scr = scores.get("pretrained"), scores.get("scratch")
    size = (f"{rows} labelled training rows per class "
            f"({'under' if little else 'at least'} model.auto_rows_per_class = {rows_threshold})")
    similar: bool | None
    if pre is None or scr is None:
        similar = None
        sim = ("similarity not measured (a linear probe needs two rows of each class to hold one "
               "out)")
    else:
        similar = pre >= scr
        sim = (f"a linear probe on the pretrained features scores {pre:.1%} against {scr:.1%} "
               f"on scratch features ({scores['folds']}-fold cross-validation on "
               f"{scores['rows']} training rows): "
               + ("similar" if similar else "very different (no better than random features)"))
    if similar is None:
        # unknown similarity: with little data, hedge between the row's two cells; with a lot
        # (a rows threshold of 2 or less), the similar cell, which fine-tunes every layer anyway
        mode, cell = UNMEASURED if little else TABLE[(False, True)]
    else:
        mode, cell = TABLE[(little, similar)]
    info = {"cell": {"data": "very little" if little else "quite a lot",
                     "similarity": "unknown" if similar is None
                     else "very similar" if similar else "very different"},
            "choice": mode, "rows_per_class": rows, "probe_accuracy": pre,
            "scratch_accuracy": scr, "folds": scores.get("folds"),
            "reason": f"{size}; {sim}. Lecture 002's table: {cell}."}
    return mode, info


def _steps(preprocess: Any) -> str:
    if preprocess is None:
        return "the default steps (standardize for tables, channel_mean_std for images)"
    return f"{preprocess!r}" + (" (none)" if preprocess == [] else "")


def preprocess_note(weights: Weights, preprocess: Any) -> str | None:
    """A note when the source's inputs were preprocessed otherwise than this run's will be."""
    if weights.preprocess == "unknown" or weights.preprocess == preprocess:
        return None
    fix = ("remove data.preprocess (the default steps)" if weights.preprocess is None
           else f"set data.preprocess = {json.dumps(weights.preprocess)}")
    return (f"{weights.origin} learned from inputs preprocessed with {_steps(weights.preprocess)}; "
            f"this run's data.preprocess is {_steps(preprocess)}: {fix} to feed it inputs like "
            "those it learned from")


def plan_transfer(model_cfg: Any, prepared: Any, model: nn.Module, *, epochs: int, seed: int,
                  saved: Mapping[str, Any] | None = None,
                  preprocess: Any = "unknown") -> TransferPlan:
    """Apply ``[model] init_from`` to a freshly built ``model``: load, choose, freeze.

    Args:
        model_cfg: the ``[model]`` section (``init_from``, ``head``, ``transfer``, ``freeze``,
            ``lr_mult``, ``probe_share``, ``auto_rows_per_class``).
        prepared: the prepared data (input shape, task, classes, the train split).
        model: the model as built for this data; changed in place.
        epochs: the run's epochs (``probe_share`` of them probe first).
        seed: the run's seed (the ``auto`` measurement's folds).
        saved: a resumed run's ``transfer.json``: its choice is kept and no weights are read
            (the checkpoint holds them).
        preprocess: this run's ``data.preprocess``: a note says when the source's differs.

    Raises:
        RunError, ConfigError, DataError: a missing or unreadable source, a source that does not
            fit the data or the model, a freeze layer the model lacks.
    """
    if saved is not None:
        plan = TransferPlan.from_dict(saved)
        if plan.mode != "scratch":
            freeze_(model, plan.frozen_at(1))
        return plan
    weights = read_weights(model_cfg.init_from)
    check_fit(weights, prepared, model_cfg.head)
    exclude: list[str] = []
    if model_cfg.head == "new":
        head, _ = head_layer(model)
        exclude = tensor_names(model, head)
    if model_cfg.freeze not in ("none", "backbone"):
        _frozen_layers(model, model_cfg.freeze)  # an unknown layer is refused before loading
    import copy

    scratch = copy.deepcopy(model)
    report = load_matching_(model, weights, exclude=exclude)
    if model_cfg.head == "new":
        zero_head_(model)
    mode, auto = model_cfg.transfer, None
    if mode == "auto":
        mode, auto = _auto(model, scratch, prepared, model_cfg.auto_rows_per_class, seed)
        if mode == "scratch":
            model.load_state_dict(scratch.state_dict())
    short = mode == "probe_then_finetune" and epochs < 2
    if short:  # one epoch leaves no room to fine-tune after the probe
        mode = "probe"
    probe_epochs = epochs if mode == "probe" else (
        max(1, min(epochs - 1, math.floor(epochs * model_cfg.probe_share)))
        if mode == "probe_then_finetune" else 0)
    plan = TransferPlan(weights.origin, model_cfg.transfer, mode, model_cfg.head,
                        model_cfg.freeze, float(model_cfg.lr_mult), probe_epochs,
                        None if mode == "scratch" else report, auto, scratch=scratch)
    note = None if preprocess == "unknown" else preprocess_note(weights, preprocess)
    if note:
        plan.notes.append(note)
    if short:
        plan.notes.append("train.epochs = 1 leaves no epoch to fine-tune after the probe: the "
                          "run is a linear probe (train for 2 epochs or more to fine-tune too)")
    if mode != "scratch":
        freeze_(model, plan.frozen_at(1))
        if not any(p.requires_grad for p in model.parameters()):
            unfreeze_(model)
            raise ConfigError(f"model.freeze = {model_cfg.freeze!r} freezes every layer of the "
                              "model: nothing would train; freeze a layer before the head")
    return plan


def doctor_inputs(cfg: Any) -> dict[str, Any]:
    """What ``trainwell doctor`` needs for a config with ``model.init_from``: the data and the
    model prepared and built as ``trainwell train`` would, the model holding the pretrained
    weights, and a copy at its scratch initialization (the ``transfer`` check's baseline)."""
    import copy

    from trainwell.data import prepare
    from trainwell.nn import build_model

    with torch.random.fork_rng(devices=[]):  # the caller's RNG is left as it was
        torch.manual_seed(cfg.seed)
        prepared = prepare(cfg.data, cfg.seed)
        example = prepared.train.head(min(256, len(prepared.train)))
        model = build_model(cfg.model, prepared.input_shape, prepared.n_outputs, prepared.task,
                            example_batch=example)
    weights = read_weights(cfg.model.init_from)
    check_fit(weights, prepared, cfg.model.head)
    scratch = copy.deepcopy(model)
    head, _ = head_layer(model)
    exclude = tensor_names(model, head) if cfg.model.head == "new" else []
    print(load_matching_(model, weights, exclude=exclude).summary(), flush=True)
    return {"prepared": prepared, "model": model, "scratch": scratch}


__all__ = [
    "TABLE",
    "UNMEASURED",
    "TransferPhases",
    "TransferPlan",
    "TransferReport",
    "Weights",
    "check_fit",
    "doctor_inputs",
    "freeze_",
    "layer_names",
    "list_pretrained",
    "load_matching_",
    "plan_transfer",
    "read_weights",
    "unfreeze_",
    "zero_head_",
]

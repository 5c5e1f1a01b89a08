"""Checkpoints for exact resume: tensors in safetensors, everything else in JSON; no pickle.

``checkpoints/last.safetensors`` (with ``prev.safetensors``, the one before) holds the
model, the best snapshot, the optimizer's tensors and the torch RNG states;
``checkpoints/last.json`` holds the rest (epoch, step, schedule, early-stopping state,
history, Python and NumPy RNG states) and points at the tensors by key.
Both are written atomically, the tensors first; a token in both tells a matching pair.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell.errors import RunError, TrainwellError
from trainwell.runs import (
    read_json,
    read_safetensors,
    weights_problem,
    write_json_atomic,
    write_safetensors_atomic,
)

_T = "__tensor__"
_D = "__dict__"
_TUPLE = "__tuple__"


def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor], copy: bool = False) -> Any:
    """A JSON-able copy of ``obj`` whose tensors are moved into ``tensors`` under unique keys.

    ``copy``: the tensors are copies, not views of ``obj``'s (which may change afterwards).
    """
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensor = obj.detach()
        tensor = tensor.to("cpu", copy=True) if copy else tensor.cpu()
        tensors[key] = tensor.contiguous()
        return {_T: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten(v, f"{prefix}.{k}", tensors, copy) for k, v in obj.items()}
        return {_D: [[k, flatten(v, f"{prefix}.{k}", tensors, copy)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, f"{prefix}.{i}", tensors, copy) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, f"{prefix}.{i}", tensors, copy) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return flatten(torch.from_numpy(obj.copy()), prefix, tensors)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if set(obj) == {_T}:
            return tensors[obj[_T]]
        if set(obj) == {_D}:
            return {k: unflatten(v, tensors) for k, v in obj[_D]}
        if set(obj) == {_TUPLE}:
            return tuple(unflatten(v, tensors) for v in obj[_TUPLE])
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def _numpy_state() -> tuple[Any, ...]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)  # legacy=True: (str, uint32 keys, int, int, float)
    return (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG the run draws from: Python, NumPy, torch (CPU and CUDA), the loader order."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts, lists, tensors, numbers) as last.safetensors + last.json."""
    tensors: dict[str, torch.Tensor] = {}
    meta = flatten(state, "s", tensors)
    return _write(Path(directory), tensors, meta)


def _write(directory: Path, tensors: dict[str, torch.Tensor], meta: Any) -> Path:
    token = secrets.token_hex(8)
    # the previous tensors stay as prev.safetensors until the new last.json names the new ones,
    # so a kill at any point leaves last.json with its matching tensors
    if (directory / "last.safetensors").exists():
        os.replace(directory / "last.safetensors", directory / "prev.safetensors")
    write_safetensors_atomic(directory / "last.safetensors", tensors, metadata={"token": token})
    write_json_atomic(directory / "last.json", {"token": token, "state": meta})
    return directory / "last.json"


class CheckpointWriter:
    """Writes checkpoints in a background thread, one at a time and in order.

    :meth:`submit` copies the state's tensors (training goes on changing the originals) and
    returns; a thread writes the files, so the loop pays for a copy of the tensors instead of
    the serialization and the fsyncs, which cost more than an epoch of a small model. A
    process killed mid-write leaves the previous checkpoint readable (see
    :func:`save_checkpoint`). :meth:`wait` blocks until the last one is on disk and raises
    the error of a failed write.

    Example:
        >>> import tempfile
        >>> writer = CheckpointWriter()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     writer.submit(d, {"epoch": 3, "w": torch.ones(2)})
        ...     writer.wait()
        ...     load_checkpoint(d)["epoch"]
        3
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, directory: str | Path, state: dict[str, Any]) -> None:
        self.wait()
        tensors: dict[str, torch.Tensor] = {}
        meta = flatten(state, "s", tensors, copy=True)
        self._thread = threading.Thread(
            target=self._run, args=(Path(directory), tensors, meta), name="trainwell-checkpoint"
        )
        self._thread.start()

    def _run(self, directory: Path, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        try:
            _write(directory, tensors, meta)
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _token(path: Path) -> str | None:
    """The token in a tensor file's metadata; None when the file is absent.

    Raises:
        RunError: the file is damaged (not a safetensors file, truncated).
    """
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            token = (fh.metadata() or {}).get("token")
    except (SafetensorError, OSError) as exc:
        raise RunError(f"{path} is damaged (truncated or altered): {exc}") from None
    return token if isinstance(token, str) else None


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Read what :func:`save_checkpoint` wrote; RunError when it is missing, torn or damaged.

    Every problem is reported as a :class:`~trainwell.errors.RunError` naming the file: a
    ``last.json`` that is not JSON, nests too deeply, lacks its token or state, or points at
    tensors its tensor file does not hold; a tensor file that is truncated or altered.
    """
    directory = Path(directory)
    path = directory / "last.json"
    if not path.is_file():
        raise RunError(f"no checkpoint in {directory} (expected last.json and last.safetensors)")
    meta = read_json(path)
    token, state = meta.get("token"), meta.get("state")
    if not isinstance(token, str):
        raise RunError(f"{path} is damaged: token should be a string; {_got(meta, 'token')}")
    if not isinstance(state, dict):
        raise RunError(f"{path} is damaged: state should be an object; {_got(meta, 'state')}")
    damage: RunError | None = None
    for name in ("last.safetensors", "prev.safetensors"):
        try:
            found = _token(directory / name)
        except RunError as exc:
            damage = damage or exc
            continue
        if found == token:
            tensors = read_safetensors(directory / name)
            try:
                out = unflatten(state, tensors)
            except KeyError as exc:
                raise RunError(
                    f"{path} is damaged: it names the tensor {exc.args[0]!r}, which "
                    f"{directory / name} does not hold"
                ) from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise RunError(f"{path} is damaged: {type(exc).__name__}: {exc}") from None
            if not isinstance(out, dict):  # a state that is itself a tensor or tuple marker
                raise RunError(f"{path} is damaged: state should be an object; got {_kind(out)}")
            return out
    if damage is not None:
        raise damage
    raise RunError(f"checkpoint in {directory} is damaged: no tensor file matches last.json")


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    shown = repr(value)
    return f"{type(value).__name__} {shown[:40] + '...' if len(shown) > 40 else shown}"


def _got(obj: dict[str, Any], key: str) -> str:
    """``it is missing``, or ``got <type> <value>``: the end of a message about ``obj[key]``."""
    return "it is missing" if key not in obj else f"got {_kind(obj[key])}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rng_problem(rng: Any) -> str | None:
    """What is wrong with the ``rng`` entry of a training state, or None."""
    if not isinstance(rng, dict):
        return f"rng should be an object; got {_kind(rng)}"
    n_torch = torch.get_rng_state().numel()
    for key in ("torch", "loader"):
        t = rng.get(key)
        if key == "loader" and key not in rng:
            continue
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.numel() != n_torch:
            return f"rng.{key} should be a uint8 tensor of {n_torch} bytes; {_got(rng, key)}"
    py = rng.get("python")
    if not (
        isinstance(py, (tuple, list))
        and len(py) == 3
        and _is_int(py[0])
        and isinstance(py[1], (tuple, list))
        and len(py[1]) == 625
        and all(_is_int(v) for v in py[1])
        and (py[2] is None or _is_number(py[2]))
    ):
        return f"rng.python should be Python's random state; {_got(rng, 'python')}"
    npy = rng.get("numpy")
    if not (
        isinstance(npy, (tuple, list))
        and len(npy) == 5
        and isinstance(npy[0], str)
        and isinstance(npy[1], torch.Tensor)
        and npy[1].numel() == 624
        and _is_int(npy[2])
        and _is_int(npy[3])
        and _is_number(npy[4])
    ):
        return f"rng.numpy should be NumPy's random state; {_got(rng, 'numpy')}"
    return None


def training_state_problem(
    state: dict[str, Any], model: torch.nn.Module | None = None
) -> str | None:
    """What keeps ``state`` from being a :class:`~trainwell.train.Trainer`'s checkpoint state (a
    key missing or of the wrong type; weights that do not fit ``model``), or None."""
    counts = ("epoch", "step", "best_epoch")
    for key in counts:
        if not _is_int(state.get(key)) or state[key] < 0:
            return f"{key} should be a count (an integer >= 0); {_got(state, key)}"
    if not _is_number(state.get("elapsed")):
        return f"elapsed should be a number of seconds; {_got(state, 'elapsed')}"
    if not isinstance(state.get("stopped_early"), bool):
        return f"stopped_early should be true or false; {_got(state, 'stopped_early')}"
    for key in ("optimizer", "schedule", "early_stopping"):
        if not isinstance(state.get(key), dict):
            return f"{key} should be an object; {_got(state, key)}"
    opt = state["optimizer"]
    groups = opt.get("param_groups")
    if not isinstance(opt.get("state"), dict) or not (
        isinstance(groups, list)
        and groups
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    ):
        return "optimizer should hold 'state' and a list of 'param_groups' with their 'params'"
    history = state.get("history")
    if not isinstance(history, list) or not all(
        isinstance(r, dict) and _is_int(r.get("epoch")) for r in history
    ):
        return f"history should be a list of per-epoch records; {_got(state, 'history')}"
    if len(history) != state["epoch"]:
        return f"history holds {len(history)} epochs but epoch is {state['epoch']}"
    problem = _rng_problem(state["rng"]) if "rng" in state else "rng: it is missing"
    if problem:
        return problem
    data_rng = state.get("data_rng", [])
    if not isinstance(data_rng, list) or not all(isinstance(t, torch.Tensor) for t in data_rng):
        return f"data_rng should be a list of generator states; {_got(state, 'data_rng')}"
    if not isinstance(state.get("objective") or {}, dict):
        return f"objective should be an object; {_got(state, 'objective')}"
    if not isinstance(state.get("callbacks") or {}, dict):
        return f"callbacks should be an object; {_got(state, 'callbacks')}"
    scaler = state.get("scaler")
    if scaler is not None and not (
        isinstance(scaler, dict)
        and _is_number(scaler.get("scale"))
        and scaler["scale"] > 0
        and all(_is_number(v) for v in scaler.values())
    ):
        return f"scaler should hold fp16's loss scale (a number > 0); {_got(state, 'scaler')}"
    for key in ("model", "best"):
        weights = state.get(key)
        if key == "best" and weights is None:  # no epoch finished before the checkpoint
            continue
        if not isinstance(weights, dict) or not all(
            isinstance(t, torch.Tensor) for t in weights.values()
        ):
            return f"{key} should map names to tensors; {_got(state, key)}"
        problem = weights_problem(model.state_dict(), weights, key) if model is not None else None
        if problem:
            return problem
    return _average_problem(state.get("average"), model)


def _average_problem(average: Any, model: torch.nn.Module | None) -> str | None:
    """What is wrong with the averaged weights of a training state (``[train.average]``)."""
    if average is None:
        return None
    if not isinstance(average, dict):
        return f"average should be an object; got {_kind(average)}"
    for key in ("count", "bn_at"):
        if not _is_int(average.get(key)) or average[key] < (0 if key == "count" else -1):
            return f"average.{key} should be a count; {_got(average, key)}"
    if not isinstance(average.get("name"), str):
        return f"average.name should be a string; {_got(average, 'name')}"
    weights = average.get("weights")
    if not isinstance(weights, dict) or not all(
        isinstance(t, torch.Tensor) for t in weights.values()
    ):
        return f"average.weights should map names to tensors; {_got(average, 'weights')}"
    if model is not None:
        return weights_problem(model.state_dict(), weights, "average.weights")
    return None


def load_training_checkpoint(
    directory: str | Path, model: torch.nn.Module | None = None
) -> dict[str, Any]:
    """A :class:`~trainwell.train.Trainer`'s checkpoint, checked before anything uses it.

    Args:
        directory: the checkpoint folder (``<run>/checkpoints``).
        model: the model about to resume; its weights' names and shapes are checked too.

    Raises:
        RunError: the files are missing or damaged, or the state is not a trainer's (a key
            missing or of the wrong type) or does not fit ``model``; the file and the key are
            named.
    """
    state = load_checkpoint(directory)
    problem = training_state_problem(state, model)
    if problem:
        raise RunError(f"{Path(directory) / 'last.json'} is damaged: {problem}")
    return state


def apply_checkpoint(
    directory: str | Path, load_state_dict: Callable[[dict[str, Any]], None],
    model: torch.nn.Module | None = None,
) -> None:
    """Load a trainer's checkpoint (:func:`load_training_checkpoint`) and hand it to
    ``load_state_dict``; a state its parts refuse (an optimizer, a schedule or an objective
    state of another shape) is reported as a RunError naming the checkpoint, not as the
    part's own error."""
    state = load_training_checkpoint(directory, model)
    try:
        load_state_dict(state)
    except TrainwellError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        what = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        raise RunError(
            f"{Path(directory) / 'last.json'} does not fit this run (is it damaged, or from "
            f"another config?): {what}"
        ) from None


__all__ = [
    "CheckpointWriter",
    "apply_checkpoint",
    "flatten",
    "load_checkpoint",
    "load_training_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "training_state_problem",
    "unflatten",
]

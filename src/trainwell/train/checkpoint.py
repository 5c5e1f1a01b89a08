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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell.errors import RunError
from trainwell.runs import read_json, read_safetensors, write_json_atomic, write_safetensors_atomic

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
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as fh:
        return (fh.metadata() or {}).get("token")


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Read what :func:`save_checkpoint` wrote; RunError when it is missing or torn."""
    directory = Path(directory)
    if not (directory / "last.json").is_file():
        raise RunError(f"no checkpoint in {directory} (expected last.json and last.safetensors)")
    meta = read_json(directory / "last.json")
    for name in ("last.safetensors", "prev.safetensors"):
        if _token(directory / name) == meta.get("token"):
            return unflatten(meta["state"], read_safetensors(directory / name))
    raise RunError(f"checkpoint in {directory} is damaged: no tensor file matches last.json")


__all__ = [
    "CheckpointWriter",
    "flatten",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "unflatten",
]

"""Checkpoints for exact resume: tensors in safetensors, everything else in JSON; no pickle.

``checkpoints/last.safetensors`` (with ``prev.safetensors``, the one before) holds the model, the best snapshot, the optimizer's tensors and
the torch RNG states; ``checkpoints/last.json`` holds the rest (epoch, step, schedule,
early-stopping state, history, Python and NumPy RNG states) and points at the tensors by key.
Both are written atomically, the tensors first; a token in both tells a matching pair.
"""

from __future__ import annotations

import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell.errors import RunError
from trainwell.runs import read_json, read_safetensors, write_json_atomic, write_safetensors_atomic

_T = "__tensor__"
_D = "__dict__"
_TUPLE = "__tuple__"


def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` whose tensors are moved into ``tensors`` under unique keys."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_T: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {_D: [[k, flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
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
    kind, keys, pos, has_gauss, cached = np.random.get_state()
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
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    meta = flatten(state, "s", tensors)
    token = secrets.token_hex(8)
    # the previous tensors stay as prev.safetensors until the new last.json names the new ones,
    # so a kill at any point leaves last.json with its matching tensors
    if (directory / "last.safetensors").exists():
        os.replace(directory / "last.safetensors", directory / "prev.safetensors")
    write_safetensors_atomic(directory / "last.safetensors", tensors, metadata={"token": token})
    write_json_atomic(directory / "last.json", {"token": token, "state": meta})
    return directory / "last.json"


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


__all__ = ["flatten", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state", "unflatten"]

"""Run directories: layout, atomic writes, the metrics log.

Files and folders get the modes a plain ``open(path, "w")`` and ``mkdir`` would give: 0o666 and
0o777 less the process's umask (0o644 and 0o755 under the usual umask 0o022). The umask is
the calling program's to set; nothing here reads or changes it.

Layout of ``runs/<name>/`` (every file written to a temporary name, then renamed)::

    config.toml            the resolved config
    meta.json              versions, machine, seed, status, start and end times
    data.json              task, classes (label mapping), features, split sizes
    preprocess.json        the fitted preprocessing (arrays in preprocess.safetensors)
    metrics.jsonl          one JSON object per epoch
    checkpoints/           last.safetensors + last.json (exact resume state)
    model.safetensors      the best-val weights, restored at the end
    results.json           best and final val metrics, test metrics on the best snapshot
    doctor.json            the doctor's findings
    report.html            the self-contained report
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainwell.errors import RunError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_TRIES = 100  # random temporary names tried before giving up (a clash is a 1 in 2**48 event)


def _new_file(folder: Path, prefix: str) -> tuple[Path, int]:
    """A new empty file ``folder/<prefix><random>.tmp``, open for writing: its path and fd.

    Made with the umask's mode, as by ``open(path, "w")`` (:mod:`tempfile` makes 0o600).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        path = folder / f"{prefix}{secrets.token_hex(6)}.tmp"
        with contextlib.suppress(FileExistsError):
            return path, os.open(path, flags, 0o666)
    raise RunError(f"no free temporary file name in {folder} after {_TRIES} tries")


def _new_folder(root: Path, prefix: str) -> Path:
    """A new empty folder ``root/<prefix><random>.staging``.

    Made with the umask's mode, as by ``mkdir`` (:func:`tempfile.mkdtemp` makes 0o700).
    """
    for _ in range(_TRIES):
        path = root / f"{prefix}{secrets.token_hex(6)}.staging"
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise RunError(f"no free staging folder name in {root} after {_TRIES} tries")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, allow_nan=True)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(path, dumps(obj) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON: {exc}") from None


def write_safetensors_atomic(path: str | os.PathLike[str], tensors: dict[str, Any],
                             metadata: dict[str, str] | None = None) -> Path:
    """Save a flat ``{name: tensor}`` dict as safetensors, atomically."""
    from safetensors.torch import save

    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return write_bytes_atomic(path, save(clean, metadata=metadata))


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist")
    return load_file(str(path))


class MetricsLog:
    """Append-only ``metrics.jsonl``: one line per record, each in a single write.

    A killed process leaves whole lines (a torn last line, from a crash of the machine, is
    skipped on reading). Lines are not fsynced one by one, which cost more than a small
    epoch: the checkpoint holds the history, and on resume the log is rewritten from it
    (:meth:`rewrite`) or truncated to the epochs it holds (:meth:`truncate_to`), so that a
    resumed run's log is line for line the log of an uninterrupted one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = dumps(record, indent=None) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a killed process
        return out

    def truncate_to(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs only."""
        self.rewrite([r for r in self.read() if int(r.get("epoch", 0)) <= epochs])

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log, atomically, by ``records``."""
        write_text_atomic(self.path, "".join(dumps(r, indent=None) + "\n" for r in records))


def validate_run_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RunError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name


def default_run_name(source: str, arch: str) -> str:
    """``<data>-<arch>``: the name of a run whose config sets none (``digits-mlp``).

    Example:
        >>> default_run_name("csv:data/houses.csv", "python:models:make_net")
        'houses-make_net'
    """
    source = source.replace("\\", "/").rstrip("/")
    stem = Path(source.partition(":")[2] or source).stem or "data"
    text = f"{stem}-{arch.rpartition(':')[2]}"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-.") or "run"


def unique_name(root: Path, base: str) -> str:
    """``base`` if free under ``root``, else ``base-2``, ``base-3`` ..."""
    if not (root / base).exists():
        return base
    i = 2
    while (root / f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


@contextlib.contextmanager
def new_run_dir(root: str | os.PathLike[str], name: str, exist_ok: bool = False) -> Iterator[Path]:
    """Create ``root/name`` whole or not at all.

    Files are written into a hidden staging folder; when the block ends without error the folder
    is renamed to its final name. On error the staging folder is removed, so a failed start
    leaves no half-made run directory. An existing run is never overwritten.
    """
    validate_run_name(name)
    root = Path(root)
    final = root / name
    if final.exists() and not exist_ok:
        raise RunError(
            f"run directory {final} already exists; pick another --name, or resume it with "
            f"--resume {final}"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = _new_folder(root, f".{name}.")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(f"run directory {final} appeared while this run was starting")
    os.replace(staging, final)
    _fsync_dir(root)

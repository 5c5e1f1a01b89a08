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
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from trainwell.errors import RunError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_TRIES = 100  # random temporary names tried before giving up (a clash is a 1 in 2**48 event)
# deeper JSON than this is no file trainwell wrote (a checkpoint nests about 8 levels); refused
# before anything walks it recursively
MAX_JSON_DEPTH = 64


def describe_os_error(exc: OSError) -> str:
    """``<file>: <what the system said>``, the one-line form of an error from the system.

    Example:
        >>> describe_os_error(OSError(28, "No space left on device", "runs/a/model.safetensors"))
        'runs/a/model.safetensors: No space left on device'
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return what
    where = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return f"{where}: {what}"


def _raise_naming(exc: OSError, path: Path) -> NoReturn:
    """Raise ``exc`` as an error of the same kind that names ``path`` (a write to an open file
    does not say which file it was, and a temporary file's name means nothing to the user)."""
    if exc.errno is None:
        raise exc
    raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


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


def _make_folder(folder: Path) -> None:
    """``mkdir -p folder``; a file where a folder should be is named as such."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(
            (p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder
        )
        raise NotADirectoryError(
            errno.ENOTDIR, "is a file, where a folder is needed", str(blocker)
        ) from None


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over it.

    A failed write (a full disk, a read-only folder) leaves ``path`` as it was and no temporary
    file behind; the ``OSError`` names ``path``.
    """
    path = Path(path)
    _make_folder(path.parent)
    try:
        tmp, fd = _new_file(path.parent, f".{path.name}.")
    except OSError as exc:
        _raise_naming(exc, path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _raise_naming(exc, path)
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


def _too_deep(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests lists and dicts more than ``limit`` levels (walked without
    recursion)."""
    level: list[Any] = [obj]
    for _ in range(limit):
        level = [
            v
            for o in level
            if isinstance(o, (dict, list))
            for v in (o.values() if isinstance(o, dict) else o)
            if isinstance(v, (dict, list))
        ]
        if not level:
            return False
    return True


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path`` (every JSON file of a run or study directory holds one).

    Raises:
        RunError: the file is missing, unreadable, not JSON, nested deeper than
            :data:`MAX_JSON_DEPTH`, or holds something other than an object (the file and
            the problem are named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise RunError(f"{path} is a folder, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise RunError(f"{path} is not UTF-8 text (byte {exc.start}): it is damaged") from None
    except OSError as exc:
        raise RunError(f"{path} cannot be read: {exc.strerror or exc}") from None
    too_deep = RunError(
        f"{path} nests arrays or objects more than {MAX_JSON_DEPTH} levels deep: it is "
        "damaged (trainwell writes no file like it)"
    )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the parser's own stack
        raise too_deep from None
    if _too_deep(obj, MAX_JSON_DEPTH):
        raise too_deep
    if not isinstance(obj, dict):
        kind = _JSON_KINDS.get(type(obj), type(obj).__name__)
        raise RunError(f"{path} holds {kind}, not a JSON object: it is damaged")
    return obj


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_data_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's ``data.json``, with the fields that rebuilding its model needs checked.

    Raises:
        RunError: the file is missing or damaged, or ``task``, ``input_shape``, ``n_outputs``,
            ``classes`` or ``heads`` is missing or of the wrong kind (the field is named).
    """
    from trainwell.tasks import TASKS

    path = Path(run_dir) / "data.json"
    info = read_json(path)
    heads = info.get("heads")  # a run of several heads says each head's task there
    task_ok = info.get("task") in TASKS or (isinstance(heads, dict) and bool(heads))
    checks: list[tuple[str, bool, str]] = [
        ("task", task_ok, f"one of {', '.join(TASKS)}"),
        (
            "input_shape",
            isinstance(info.get("input_shape"), list)
            and bool(info["input_shape"])
            and all(_positive_int(d) for d in info["input_shape"]),
            "a list of sizes >= 1, e.g. [4] or [3, 32, 32]",
        ),
        ("n_outputs", _positive_int(info.get("n_outputs")), "an integer >= 1"),
        ("classes", isinstance(info.get("classes"), (list, type(None))), "a list or null"),
        ("heads", isinstance(heads, (dict, type(None))), "an object or null"),
    ]
    for key, ok, allowed in checks:
        if not ok:
            got = "it is missing" if key not in info else f"got {info[key]!r:.60}"
            raise RunError(f"{path} is damaged: {key} should be {allowed}; {got}")
    return info


def write_safetensors_atomic(path: str | os.PathLike[str], tensors: dict[str, Any],
                             metadata: dict[str, str] | None = None) -> Path:
    """Save a flat ``{name: tensor}`` dict as safetensors, atomically."""
    from safetensors.torch import save

    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return write_bytes_atomic(path, save(clean, metadata=metadata))


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tensors of a safetensors file.

    Raises:
        RunError: the file is missing, unreadable, truncated or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist")
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise RunError(f"{path} is damaged (truncated or altered): {exc}") from None
    except OSError as exc:
        raise RunError(f"{path} cannot be read: {exc.strerror or exc}") from None


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


def weights_problem(own: dict[str, Any], saved: Any, what: str) -> str | None:
    """What keeps ``saved`` (``{name: tensor}``) from loading into a module whose state dict is
    ``own``: a missing or unexpected name, or another shape; None when it fits.

    Example:
        >>> import torch
        >>> weights_problem({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3)}, "the file")
        "the file holds 'w' of shape (3,); the model's is (2, 3)"
    """
    if not isinstance(saved, dict) or not all(_shape(v) is not None for v in saved.values()):
        return f"{what} should map names to tensors; got {type(saved).__name__}"
    missing = [k for k in own if k not in saved]
    if missing:
        return f"{what} lacks {len(missing)} of the model's tensors, e.g. {missing[0]!r}"
    unexpected = [k for k in saved if k not in own]
    if unexpected:
        return f"{what} holds {len(unexpected)} tensors the model has not, e.g. {unexpected[0]!r}"
    for k, v in own.items():
        if _shape(v) is not None and _shape(saved[k]) != _shape(v):
            return f"{what} holds {k!r} of shape {_shape(saved[k])}; the model's is {_shape(v)}"
    return None


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load the safetensors weights in ``path`` into ``model`` (an ``nn.Module``), strictly.

    Raises:
        RunError: the file is damaged, or its tensors do not fit the model (a missing or
            unexpected name, another shape); the first mismatch is named.
    """
    tensors = read_safetensors(path)
    problem = weights_problem(model.state_dict(), tensors, "the file")
    if problem:
        raise RunError(f"{path} does not hold this run's model weights: {problem}")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        first = str(exc).strip().splitlines()[-1].strip()
        raise RunError(f"{path} does not fit this run's model: {first}") from None


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
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as exc:  # a write does not say which file it was
            _raise_naming(exc, self.path)

    def read(self) -> list[dict[str, Any]]:
        """The records up to the first line that is not a whole JSON object: a torn last line
        from a killed process, or a damaged one, ends the log."""
        if not self.path.exists():
            return []
        out = []
        for raw in self.path.read_bytes().splitlines():
            try:
                record = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                break
            if record is None:
                continue
            if not isinstance(record, dict) or _too_deep(record, MAX_JSON_DEPTH):
                break
            out.append(record)
        return out

    def truncate_to(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs only (a record without a whole
        epoch number ends the log, as a damaged line does)."""
        kept = []
        for record in self.read():
            epoch = record.get("epoch", 0)
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                break
            if epoch <= epochs:
                kept.append(record)
        self.rewrite(kept)

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
    try:
        _make_folder(root)
        staging = _new_folder(root, f".{name}.")
    except OSError as exc:
        raise RunError(
            f"runs_dir {str(root)!r}: cannot create the run directory {name!r} there: "
            f"{describe_os_error(exc)}"
        ) from None
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

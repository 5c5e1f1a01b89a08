"""The ``trainwell`` command line.

Each subpackage contributes its commands through ``add_commands(subparsers)`` in its own
``cli.py``; those modules import only ``argparse`` at import time, so ``trainwell --help`` stays
fast, and load torch only inside the command that needs it.

The process-wide tricks of the command live here and only here: the library (``fit``,
``doctor``, ``tune``, the reports) leaves the garbage collector, the umask and ``atexit`` to
the program that calls it. In the ``trainwell`` command's own process (:func:`run`),
:func:`import_libraries` loads the heavy libraries with the collector off and then freezes them
out of later collections, and the process ends with ``os._exit`` once the ``atexit`` handlers
have run.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import NoReturn

from trainwell import __version__

# The libraries that commands which train, or draw a report, load anyway (import_libraries).
TRAINING_LIBRARIES = ("torch", "pandas", "sklearn.preprocessing", "sklearn.model_selection")
REPORT_LIBRARIES = ("matplotlib.figure", "pandas", "sklearn.metrics")

command_process = False  # True in the ``trainwell`` command's own process: set by run()

# Subpackage command modules, in the order their commands appear in --help.
COMMAND_MODULES = (
    "trainwell.commands",
    "trainwell.data.cli",
    "trainwell.nn.cli",
    "trainwell.train.cli",
    "trainwell.diagnose.cli",
    "trainwell.tune.cli",
    "trainwell.after.cli",
    "trainwell.report.cli",
    "trainwell.deploy.cli",
)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The CONFIG argument and repeatable ``--set section.key=value``, shared by commands."""
    parser.add_argument("config", metavar="CONFIG", help="experiment TOML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.optimizer.lr=0.01 (repeatable)",
    )


def add_trust_code_arg(parser: argparse.ArgumentParser) -> None:
    """``--trust-code``, for the commands that build a model: a ``python:module:factory``
    architecture imports and runs that module only when the user asks for it."""
    parser.add_argument(
        "--trust-code",
        dest="trust_code",
        action="store_true",
        help="allow model.arch = 'python:module:factory' to import and run that module "
        "(only for a config or run directory you trust; see docs/trust.md)",
    )


def load_config_from_args(args: argparse.Namespace):  # noqa: ANN201 - lazy import of Config
    from trainwell.config import load_config

    return load_config(args.config, args.overrides)


def import_libraries(*names: str) -> None:
    """Import the modules ``names`` that a command is about to use.

    In the command's own process the collector is off while they load, and what they made is
    then frozen (``gc.freeze``, as Python's documentation suggests for a process done starting):
    importing torch, scikit-learn and pandas leaves some 300,000 long-lived objects and sets off
    full collections that walk all of them, about 0.3 s a process for next to no garbage, and
    a full collection while a report draws would walk them again. Called through :func:`main`
    from Python, this imports the modules and leaves the collector alone.

    Args:
        names: modules, e.g. :data:`TRAINING_LIBRARIES` or :data:`REPORT_LIBRARIES`.
    """
    pause = command_process and gc.isenabled()
    if pause:
        gc.disable()
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        if pause:
            gc.freeze()
            gc.enable()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


class CommandParser(argparse.ArgumentParser):
    """argparse's parser whose mistakes read like every other error of the command: one line,
    ``error: trainwell <command>: <what is wrong> (see trainwell <command> --help)``, exit 2.
    Its subcommands' parsers are of this class too (``add_subparsers`` makes its own kind)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="trainwell",
        description="Train neural networks the way the lectures teach it.",
    )
    parser.add_argument("--version", action="version", version=f"trainwell {__version__}")
    add_verbosity_args(parser, "verbose", "quiet")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_commands(sub)
    for command in sub.choices.values():  # -v / -q after the subcommand too
        add_verbosity_args(command, "sub_verbose", "sub_quiet")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose += getattr(args, "sub_verbose", 0)
    args.quiet = args.quiet or getattr(args, "sub_quiet", False)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet contradict each other: give one of them")
    # warnings meant for the user (a zero init, the step activation) read as one line
    warnings.formatwarning = _one_line_warning
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from trainwell.errors import TrainwellError

    try:
        with _trust(args), command_logging(args.verbose, args.quiet):
            return int(func(args) or 0)
    except TrainwellError as exc:
        if _speaks():
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused a file: a full disk, a read-only folder ...
        from trainwell.runs import describe_os_error

        if _speaks():
            print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from trainwell.errors import Terminated

        if not _speaks():
            return 128 + exc.signum if isinstance(exc, Terminated) else 130
        command = getattr(args, "command", None) or ""
        how = _RESUME_HINTS.get(command)
        run_dir = getattr(exc, "run_dir", None)
        if command in ("train", "demo") and run_dir is not None:  # the run it was training
            how = f"the run continues with trainwell train --resume {run_dir}"
        if isinstance(exc, Terminated):  # SIGTERM: the run directory says "interrupted"
            how = how or _RESUME_HINTS["train"]
        if how == _RESUME_HINTS["train"] and os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
            how += f" --nproc {os.environ['WORLD_SIZE']}"  # rank 0 of a data-parallel run
        if isinstance(exc, Terminated):
            print(f"interrupted by signal {exc.signum} (SIGTERM); {how}", file=sys.stderr)
            return 128 + exc.signum
        print(f"interrupted; {how}" if how else "interrupted", file=sys.stderr)
        return 130


#: what continues the work a command was interrupted in
_RESUME_HINTS = {
    "train": "a run continues with trainwell train --resume RUN",
    "ensemble": "an ensemble continues with trainwell ensemble --resume ENS",
    "tune": "a study continues with trainwell tune --resume STUDY_DIR",
}


def _speaks() -> bool:
    """Whether this process reports errors: not one of torchrun's ranks other than 0, whose
    errors rank 0 reports once (docs/distributed.md)."""
    return os.environ.get("RANK", "0") in ("", "0")


def add_verbosity_args(parser: argparse.ArgumentParser, verbose: str, quiet: str) -> None:
    """``-v`` (repeatable) and ``-q``, stored under the names ``verbose`` and ``quiet``; a
    subcommand that defines either option itself keeps its own."""
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(
            "-v", "--verbose", dest=verbose, action="count", default=0,
            help="-v: trainwell's debug messages; -vv: also other libraries' (matplotlib, "
                 "PIL, optuna ...), which stay at warnings otherwise")
    with contextlib.suppress(argparse.ArgumentError):
        parser.add_argument(
            "-q", "--quiet", dest=quiet, action="store_true",
            help="print only errors and the command's final lines (no epoch lines, no "
                 "warnings)")


@contextlib.contextmanager
def command_logging(verbose: int = 0, quiet: bool = False) -> Iterator[None]:
    """The command's logging while it runs, as it was afterwards.

    Messages print on standard error as ``LEVEL logger: message``. By default warnings and
    errors print, and the epoch lines (logger ``trainwell.progress``). ``verbose`` 1 adds
    trainwell's own debug and info messages, 2 every library's; ``quiet`` keeps errors only,
    hides the epoch lines and ignores Python warnings.
    """
    from trainwell.train.progress import progress_logger as progress  # its handler, level

    root = logging.getLogger()
    own = logging.getLogger("trainwell")
    saved = [(log, log.level) for log in (root, own, progress)]
    handler = None
    if not root.handlers:  # as logging.basicConfig: unless the program set up its own
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    floor = logging.ERROR if quiet else logging.WARNING
    root.setLevel(logging.DEBUG if verbose >= 2 else floor)
    own.setLevel(logging.DEBUG if verbose else floor)
    progress.setLevel(logging.ERROR if quiet else logging.INFO)
    try:
        with warnings.catch_warnings() if quiet else contextlib.nullcontext():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in saved:
            log.setLevel(level)
        if handler is not None:
            root.removeHandler(handler)


def _trust(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """The consent of ``--trust-code`` for the command's duration (torch loads only then)."""
    if not getattr(args, "trust_code", False):
        return contextlib.nullcontext()
    from trainwell.nn.build import trusting_code

    return trusting_code()


def _terminate(signum: int, frame: FrameType | None) -> None:
    from trainwell.errors import Terminated

    if not _speaks():  # a rank other than 0, which writes nothing: torchrun is ending the job
        for stream in (sys.stdout, sys.stderr):  # (raised in a __del__, the interrupt would be
            with contextlib.suppress(Exception):  # printed as "Exception ignored" and lost)
                stream.flush()
        os._exit(128 + signum)
    raise Terminated(signum)


def run() -> None:
    """The ``trainwell`` command: :func:`main`, then an exit without the interpreter's teardown.

    A process that has imported torch, scikit-learn and matplotlib spends about half a second
    at exit freeing their modules one by one, a tenth of a small training run. When ``main``
    returns and no other thread is alive, this flushes the standard streams, runs every
    ``atexit`` handler (logs flushed, temporary directories removed, worker processes
    joined, coverage saved) and ends the process with ``os._exit``: only the freeing of
    memory the system reclaims anyway is skipped (Python never promised ``__del__`` at exit).
    It also marks the process as the command's own, for :func:`import_libraries`.
    An uncaught exception, ``SystemExit`` or another live thread take the normal way out;
    :func:`main`, called from Python, is unaffected.
    """
    global command_process
    command_process = True  # this process is the command: it may pause and freeze the collector
    # SIGTERM ends a run as Ctrl-C does (final status, checkpoint kept), not mid-write
    signal.signal(signal.SIGTERM, _terminate)
    code = main()
    # ``atexit._run_exitfuncs`` is CPython's own hook (what the interpreter calls at exit):
    # the exit handlers run as on a normal exit; without it, take the normal way out
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if threading.active_count() > 1 or run_exit_handlers is None:
        sys.exit(code)
    _flush_std()
    run_exit_handlers()
    _flush_std()
    # skip the teardown that frees torch's, scikit-learn's and matplotlib's modules (~0.5 s)
    os._exit(code)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # None, a closed pipe or stream
            pass


if __name__ == "__main__":
    run()

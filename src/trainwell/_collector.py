"""When the garbage collector runs: paused while a command loads its modules and draws figures.

Importing torch, scikit-learn and pandas leaves some 300,000 long-lived objects and sets off
full collections that walk all of them, about 0.3 s per process, for next to no garbage; a
full collection during the report walks them again. In the ``trainwell`` command's own
process (``cli.run`` sets :data:`command_process`), the ``train`` and ``demo`` commands run
inside :func:`startup_pause`; ``fit`` calls :func:`resume_after_startup` once the data and the
model are ready, which moves what exists out of future collections (``gc.freeze``, as Python's
documentation suggests for a process that is done starting) and turns collection back on for
training. ``main`` called from Python, and ``fit``, leave the collector alone.
:func:`paused` keeps the collector off for a bounded piece of work such as drawing a report;
the cycles it leaves are collected once it is back on.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

command_process = False  # set by cli.run: this process is the trainwell command
_startup_pause = False


@contextlib.contextmanager
def startup_pause() -> Iterator[None]:
    """In the command's process, the collector off until :func:`resume_after_startup` (or the
    end of the block, whichever comes first)."""
    global _startup_pause
    if command_process and gc.isenabled() and not _startup_pause:
        gc.disable()
        _startup_pause = True
    try:
        yield
    finally:
        if _startup_pause:  # the command failed before training: collect again, freeze nothing
            _startup_pause = False
            gc.enable()


def resume_after_startup() -> None:
    """End a :func:`startup_pause`: freeze the objects made so far, collect again."""
    global _startup_pause
    if _startup_pause:
        _startup_pause = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off inside the block, back to its state after."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()

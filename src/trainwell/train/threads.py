"""How many intra-op threads a fit uses: chosen, not inherited.

torch starts with one intra-op thread per core. For the small models of most experiments that
only adds synchronisation: measured on a 2-core machine (``benchmarks/threads.py``, epoch time
with 2 threads over 1), a step of parameters x batch up to ~5e6 ran no faster on 2 threads
(ratios 1.01-1.08), while steps of 4e7-1.2e8 gained (0.64-0.68) on an idle machine. On a busy
one (load 3 on the 2 cores) 2 threads were 2.4-8x slower at every size, and the doctor took
84-93 s with torch's default against 6.5-7.9 s with one thread. So ``threads = "auto"`` gives:

* 1 thread when a training step is small (parameters x batch size below
  :data:`SMALL_STEP`), and
* otherwise the cores this process may run on that the other processes leave idle (the
  1-minute load average), at least 1, and never more than the process's own torch setting
  (a tuning worker runs with one).

The count is set for the fit only (:func:`use_threads` restores the caller's), and a checkpoint
records it, since bit-exact resume depends on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

#: parameters x batch size below which one thread is as fast as several (measured, see above)
SMALL_STEP = 10_000_000


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return max(os.cpu_count() or 1, 1)


def idle_cores() -> int:
    """Available cores minus what other processes keep busy (the 1-minute load), at least 1."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average here
        return cores
    return int(min(cores, max(1, round(cores - busy))))


def auto_threads(model: nn.Module, batch_size: int) -> int:
    """The intra-op thread count of ``threads = "auto"`` for a model and batch size."""
    params = sum(p.numel() for p in model.parameters())
    if params * max(batch_size, 1) < SMALL_STEP:
        return 1
    # never above the process's own setting: a tuning worker (or a user) that set one thread
    # per process keeps it, so parallel workers do not oversubscribe the cores
    return max(1, min(idle_cores(), torch.get_num_threads()))


def resolve_threads(spec: int | str | None, model: nn.Module, batch_size: int) -> int | None:
    """``"auto"`` -> :func:`auto_threads`; an int as given (>= 1); None: torch's as it is."""
    if spec is None:
        return None
    if spec == "auto":
        return auto_threads(model, batch_size)
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        from trainwell.errors import ConfigError

        raise ConfigError(f"train.threads must be \"auto\" or an integer >= 1; got {spec!r}")
    return spec


@contextlib.contextmanager
def use_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (None: unchanged), then restore the count."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if n != before:
        log.debug("intra-op threads: %d (was %d)", n, before)
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


__all__ = [
    "SMALL_STEP",
    "auto_threads",
    "available_cores",
    "idle_cores",
    "resolve_threads",
    "use_threads",
]

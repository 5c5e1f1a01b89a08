"""Stop signals in a study's processes: raised in a trial, never inside a storage call."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from trainwell.tune.interrupts import StopSignals, in_storage_call

# a function whose frames read as a storage module's (what the handler looks for)
_STORAGE: dict = {"__name__": "sqlalchemy.engine.probe", "time": time}
exec(  # noqa: S102 - defines the probe in a namespace named like SQLAlchemy's
    "def busy(seconds):\n"
    "    end = time.monotonic() + seconds\n"
    "    while time.monotonic() < end:\n"
    "        pass\n"
    "    return 'done'\n",
    _STORAGE,
)


def _signal_soon(sig: int = signal.SIGINT, after: float = 0.05) -> None:
    threading.Timer(after, os.kill, (os.getpid(), sig)).start()


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_an_interrupt_during_a_storage_call_lands_after_the_call():
    finished = None
    with pytest.raises(KeyboardInterrupt), StopSignals() as stop, stop.interruptible():
        _signal_soon()
        finished = _STORAGE["busy"](0.4)  # the signal arrives in the middle of it
        returned = time.monotonic()
        _spin(5)
    assert finished == "done"  # the storage call ran to its end
    assert time.monotonic() - returned < 1  # and the interrupt came right after it


def test_an_interrupt_in_a_trial_is_raised_at_once():
    with pytest.raises(KeyboardInterrupt), StopSignals() as stop, stop.interruptible():
        _signal_soon(signal.SIGTERM)
        started = time.monotonic()
        _spin(5)
    assert time.monotonic() - started < 1


def test_a_signal_outside_a_trial_is_remembered_and_raised_on_the_next_trial():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        _spin(0.1)  # nothing is raised: the worker is claiming, drawing or recording
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt), stop.interruptible():
            pytest.fail("the trial must not start")
        # once raised, later signals are ignored while the trial is put back in the queue
        os.kill(os.getpid(), signal.SIGINT)
        _spin(0.1)
        with stop.interruptible():
            _spin(0.1)


def test_the_previous_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopSignals():
        assert signal.getsignal(signal.SIGINT) != before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_storage_frames_are_recognized():
    import sys

    assert not in_storage_call(sys._getframe())
    frames = []
    exec(  # noqa: S102
        "import sys\nframes.append(sys._getframe())",
        {"__name__": "optuna.storages._rdb.storage", "frames": frames},
    )
    assert in_storage_call(frames[0])

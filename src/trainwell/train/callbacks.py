"""Training events and callbacks (the extension point of the :class:`Trainer`).

A callback is any object with methods named after the events it wants; each takes the trainer.
The events, in the order one epoch meets them::

    before_fit
      before_epoch
        before_batch  after_loss  after_backward  after_step  after_batch   (every batch)
      after_epoch
    after_fit      (a fit that ran to its end, early stopping included)
    end            (always, last: also after a divergence, a StopRun or any error)

``end`` is where a callback releases what it holds and writes what it owes (a verdict, a
report, averaged weights) whatever happened; ``trainer.outcome`` says how the fit ended and
``trainer.error`` holds the exception, if any.

A callback with a ``state_key`` (a string) and ``state_dict()`` / ``load_state_dict(state)``
has its state saved in the trainer's checkpoints (under ``callbacks``, by key) and restored on
resume, for callbacks that must resume exactly (ones that draw random numbers or accumulate).

An exception raised by a callback propagates unchanged (the tuner prunes a trial this way, by
raising :class:`~trainwell.errors.StopRun`), with a note naming the callback and the event; the
trainer is consistent when it does: the step that was running either completed or did not
start. An exception raised in ``end`` while another one is propagating is logged, so that the
error that ended the fit is the one reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainwell.train.trainer import Trainer

logger = logging.getLogger(__name__)

EVENTS = (
    "before_fit",
    "before_epoch",
    "before_batch",
    "after_loss",
    "after_backward",
    "after_step",
    "after_batch",
    "after_epoch",
    "after_fit",
    "end",
)


class Callback:
    """Base class with a no-op method per event; subclass and override the ones you need.

    Example:
        >>> class PrintLoss(Callback):
        ...     def after_epoch(self, trainer):
        ...         print(trainer.history[-1]["train_loss"])
    """

    def before_fit(self, trainer: Trainer) -> None: ...
    def before_epoch(self, trainer: Trainer) -> None: ...
    def before_batch(self, trainer: Trainer) -> None: ...
    def after_loss(self, trainer: Trainer) -> None: ...
    def after_backward(self, trainer: Trainer) -> None: ...
    def after_step(self, trainer: Trainer) -> None: ...
    def after_batch(self, trainer: Trainer) -> None: ...
    def after_epoch(self, trainer: Trainer) -> None: ...
    def after_fit(self, trainer: Trainer) -> None: ...
    def end(self, trainer: Trainer) -> None: ...


def _overrides(cb: Any, event: str) -> bool:
    method = getattr(cb, event, None)
    if method is None or not callable(method):
        return False
    base = getattr(Callback, event)
    return getattr(type(cb), event, None) is not base


class Events:
    """The callbacks' methods grouped by event; an event nobody listens to costs nothing."""

    def __init__(self, callbacks: Iterable[Any] = ()) -> None:
        self.callbacks = list(callbacks)
        self._hooks: dict[str, list[tuple[Any, Callable[[Any], Any]]]] = {
            e: [(cb, getattr(cb, e)) for cb in self.callbacks if _overrides(cb, e)] for e in EVENTS
        }

    def __call__(self, event: str, trainer: Trainer) -> None:
        for cb, hook in self._hooks[event]:
            try:
                hook(trainer)
            except BaseException as exc:
                exc.add_note(f"raised by callback {type(cb).__name__} in event {event!r}")
                raise

    def end(self, trainer: Trainer) -> None:
        """Every callback's ``end``, each one even when another fails.

        With an error already propagating, their own errors are logged; after a fit that ended
        well, the first of them is raised once every callback has had its ``end``.
        """
        failing = trainer.error is not None
        first: Exception | None = None
        for cb, hook in self._hooks["end"]:
            try:
                hook(trainer)
            except Exception as exc:
                if failing:
                    # the same refusal of the system (a full disk) is one error, said once
                    same = isinstance(exc, OSError) and isinstance(trainer.error, OSError) and (
                        exc.errno == trainer.error.errno
                    )
                    (logger.debug if same else logger.error)(
                        "callback %s failed in event 'end' after the fit ended with %s: %s",
                        type(cb).__name__, type(trainer.error).__name__, exc,
                    )
                elif first is None:
                    exc.add_note(f"raised by callback {type(cb).__name__} in event 'end'")
                    first = exc
        if first is not None:
            raise first


__all__ = ["EVENTS", "Callback", "Events"]

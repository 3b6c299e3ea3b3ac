"""Keeping the garbage collector's full passes short in the daemon and the backtest.

Detection keeps a few hundred tracked objects per device for as long as the process lives.
Every full (generation 2) pass of Python's cyclic collector walks all of them: with a
couple of thousand devices that is a 150–350 ms stop of message processing every 15–25 s.
Objects that have survived until a quiet moment between batches are almost all such
long-lived state, so they are frozen (:func:`gc.freeze`): later passes skip them. A frozen
object that later becomes part of unreachable cycles is not reclaimed while frozen, so once
in a long while everything is unfrozen and collected in one full pass.

A backtest builds the same state from nothing: unfrozen, its growth sets off a full pass over
all of it every few batches, a fifth of a replay's time.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


class QuietCollector:
    """Call :meth:`between_batches` when no batch is being processed.

    ``freeze_every``: seconds between freezes of everything alive; ``full_every``: seconds
    between full passes over everything (frozen objects included); ``clock``: monotonic.
    """

    def __init__(
        self,
        freeze_every: float = 10.0,
        full_every: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._freeze_every = freeze_every
        self._full_every = full_every
        self._clock = clock
        self._frozen_at = float("-inf")
        self._full_at = clock()

    def between_batches(self) -> None:
        now = self._clock()
        if now - self._full_at >= self._full_every:
            gc.unfreeze()
            gc.collect()
            self._full_at = now
            self._frozen_at = float("-inf")
        if now - self._frozen_at >= self._freeze_every:
            gc.freeze()
            self._frozen_at = now

    def release(self) -> None:
        """Unfreeze everything, for a process that goes on after the work this collector
        watched: what that work left behind in cycles can be reclaimed again."""
        gc.unfreeze()

"""The "stuck" alert: tells when a run's step has not moved for a while.

The runner says which step runs (:meth:`Watchdog.step`) and, as work goes on, that it moved
(:meth:`Watchdog.progress`: an object imported, a chunk sent, a gate checked). When nothing
moved for ``stuck_after`` seconds, ``on_stuck(step, seconds_without_progress)`` is called,
and again after every further ``stuck_after`` seconds while it stays so. The alert only
tells a person (a notification): the run keeps trying, and stops only when they say so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Watchdog:
    """A daemon thread that looks every ``tick`` seconds whether the step is stuck (module
    doc); a context manager. ``clock`` is injectable, so tests move time themselves.
    ``stuck_after`` of 0 or less turns the alert off."""

    def __init__(
        self,
        stuck_after: float,
        on_stuck: Callable[[str, float], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 1.0,
    ) -> None:
        self.stuck_after = stuck_after
        self.on_stuck = on_stuck
        self.clock = clock
        self.tick = tick
        self._lock = threading.Lock()
        self._step: str | None = None
        self._moved = 0.0
        self._next_alert = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is None and self.stuck_after > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="migrator-watchdog")
            self._thread.daemon = True
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(max(1.0, 2 * self.tick))

    def step(self, name: str | None) -> None:
        """``name`` runs now (None: none; nothing is watched): its time starts now."""
        with self._lock:
            self._step = name
            self._moved_now()

    def progress(self) -> None:
        """The running step moved."""
        with self._lock:
            self._moved_now()

    def _moved_now(self) -> None:
        self._moved = self.clock()
        self._next_alert = self._moved + self.stuck_after

    def check(self) -> bool:
        """Look once (the thread does it every tick): alert when the step is stuck and its
        next alert is due; returns whether it alerted."""
        with self._lock:
            step, now = self._step, self.clock()
            if step is None or self.stuck_after <= 0 or now < self._next_alert:
                return False
            self._next_alert += self.stuck_after * (
                1 + (now - self._next_alert) // self.stuck_after
            )
            idle = now - self._moved
        try:
            self.on_stuck(step, idle)
        except Exception:  # an alert that fails must not end the watch
            log.warning("the stuck alert for %s failed", step, exc_info=True)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            self.check()

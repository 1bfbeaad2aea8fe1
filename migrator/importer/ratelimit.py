"""A client-side rate limit shared by the import's worker threads (``--qps``).

A token bucket: ``qps`` tokens a second, up to ``burst`` saved up; each write request takes
one. It protects a target API server that has no priority-and-fairness headroom to spare,
at the cost of speed; ``qps`` 0 (the default) means no limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Blocks callers of :meth:`acquire` so no more than ``qps`` pass per second on average."""

    def __init__(
        self,
        qps: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = burst if burst is not None else max(1, int(qps))
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take one token, waiting for it if the bucket is empty (returns at once if no limit)."""
        if self.qps <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)

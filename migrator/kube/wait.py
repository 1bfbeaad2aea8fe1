"""Waiting until things in a cluster are ready, or say they never will be: one way, for
every stage.

Like lightkube's ``wait(for_conditions=..., raise_for_conditions=...)``, a check knows the
conditions of failure as well as of success, so a wait lasts only while waiting can still
help: a Deployment past its progress deadline, a failed Job or a CRD whose names were not
accepted end the wait for that object at once, instead of at the deadline.

:func:`wait_for_all` waits for many things against one deadline (an import's CRDs, every
workload verify checks), fetching only those still on their way at each round;
:func:`wait_for` is the same for one. Clock and sleep are injectable, so tests never
really wait. A fetch that fails for good (the object was deleted: 404) ends that thing's
wait as failed, with the error as the reason; a temporary failure that outlasted the
client's retries (the cluster is gone) is raised, as everywhere else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from migrator.errors import Interrupted, MigratorError, is_temporary

READY, WAITING, FAILED = "ready", "waiting", "failed"

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Readiness:
    """``state`` is ready, waiting or failed; ``reason`` says why (empty when ready)."""

    state: str
    reason: str = ""


Check = Callable[[T], Readiness]


@dataclass(frozen=True)
class Waited(Generic[T]):
    """How a wait for one thing ended: its last readiness (``waiting`` when the deadline came
    first, the reason then saying how long was waited), the value last fetched (None when
    the fetch itself failed), and whether the deadline ended it."""

    readiness: Readiness
    value: T | None
    timed_out: bool = False

    @property
    def ready(self) -> bool:
        return self.readiness.state == READY


def wait_for_all(
    keys: Iterable[K],
    fetch: Callable[[K], T],
    check: Check[T],
    *,
    timeout: float,
    interval: float = 1.0,
    first: Mapping[K, T] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[K, Waited[T]]:
    """Wait until every key's value, as ``fetch`` returns it, is ready or failed by ``check``,
    or ``timeout`` seconds have passed; returns how each wait ended, in ``keys`` order.

    ``first`` holds values already fetched (a list read a moment ago), checked before any
    fetch. ``on_progress(settled, total)`` is called after each round.
    """
    order = list(dict.fromkeys(keys))
    ended: dict[K, Waited[T]] = {}
    last: dict[K, T] = dict(first or {})
    deadline = clock() + timeout
    pending = order
    while True:
        still: list[K] = []
        for key in pending:
            if key not in last:
                try:
                    last[key] = fetch(key)
                except MigratorError as exc:
                    if is_temporary(exc):
                        raise
                    ended[key] = Waited(Readiness(FAILED, str(exc)), None)
                    continue
            state = check(last[key])
            if state.state == WAITING:
                still.append(key)
            else:
                ended[key] = Waited(state, last[key])
        if on_progress is not None:
            on_progress(len(ended), len(order))
        remaining = deadline - clock()
        if not still or remaining <= 0:
            break
        sleep(min(interval, remaining))
        for key in still:
            last.pop(key, None)
        pending = still
    for key in still:
        reason = check(last[key]).reason
        ended[key] = Waited(
            Readiness(WAITING, f"{reason} after {timeout:.0f}s"), last[key], timed_out=True
        )
    return {key: ended[key] for key in order}


def wait_for(
    fetch: Callable[[], T],
    check: Check[T],
    *,
    timeout: float,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited[T]:
    """Wait for one thing: :func:`wait_for_all` with a single key."""
    waited = wait_for_all(
        [None],
        lambda _key: fetch(),
        check,
        timeout=timeout,
        interval=interval,
        clock=clock,
        sleep=sleep,
    )
    return waited[None]


def stoppable_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends early, raising :class:`~migrator.errors.Interrupted`, once ``stop``
    is set (the run is stopping: the user interrupted it)."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted("the run is stopping")

    return sleep

"""One way for tests to wait: until a condition holds, or fail saying what never happened.

Tests wait on the proving ground (a CRD to be served, an authorizer to learn of a binding, a
killed process's children to go); every such wait goes through :func:`wait_until`, so a wait
that times out fails with what it waited for and the last value it saw, never hangs, and
never passes by accident.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], *, timeout: float = 30.0,
               interval: float = 0.5,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy, and return
    that; an exception of ``ignore`` counts as "not yet". After ``timeout`` seconds the test
    fails, naming ``what`` and the last value (or error) seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not reached in {timeout:.0f}s (last seen: {last!r})",
                        pytrace=False)
        time.sleep(interval)

"""The C library, for the few calls the ``os`` module lacks (``syncfs``, ``linkat`` by
descriptor, ``mallopt``, ``malloc_trim``): loaded once, keeping ``errno``."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The process's C library, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def call(name: str, *args: object) -> int | None:
    """The C library's function ``name`` called with ``args`` (its result; ``errno`` is
    ``ctypes.get_errno()``), or None where the library or the function is missing."""
    function = getattr(libc(), name, None)
    return None if function is None else int(function(*args))

"""The C library, for the few calls the ``os`` module lacks (``syncfs``, ``linkat`` by
descriptor, ``mallopt``, ``malloc_trim``): loaded once, keeping ``errno``."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The process's C library, or None where it cannot be loaded. A call glibc has and
    another C library lacks raises AttributeError."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

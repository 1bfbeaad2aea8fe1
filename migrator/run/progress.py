"""How a running stage says how far it is.

``progress(task, done, total)``: ``task`` names what is counted (a resource type, an import
phase, "parity"), ``done`` how many of its items are finished, ``total`` how many there are
(None while unknown). Called from worker threads; the receiver (progress bars, the
orchestration's journal) must be thread-safe and quick.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]

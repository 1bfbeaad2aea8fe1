"""The verify stage: does the target hold every object of the snapshot, as it was, and is it up?

:func:`plan` says what the target must hold (the snapshot's inventory within a scope),
:func:`apply` checks it (:mod:`~migrator.verify.stage`), :func:`verify_snapshot` is both;
:mod:`~migrator.verify.compare` holds the pure comparison of one object.
"""

from __future__ import annotations

from migrator.verify.compare import MASK, differences, expected, is_regenerated, project
from migrator.verify.stage import VerifyOptions, VerifyReport, apply, plan, verify_snapshot

__all__ = [
    "MASK",
    "VerifyOptions",
    "VerifyReport",
    "apply",
    "differences",
    "expected",
    "is_regenerated",
    "plan",
    "project",
    "verify_snapshot",
]

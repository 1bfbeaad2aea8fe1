"""The base of every stage's report.

A stage that finished but could not do everything (some objects refused, some types not
listed, some volumes failed) is *partial*: its report names each problem with the message
of whoever refused, and the CLI exits with the "partial" code (Velero's result collection).
Reports hold names, counts and server messages, never object content, so they are safe to
print and to store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing a stage could not do: ``what`` names it, ``error`` says why."""

    what: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "error": self.error}


class StageReport(ABC):
    """What every stage's report answers; ``to_dict`` is its ``-o json`` document."""

    @abstractmethod
    def problems(self) -> list[Problem]:
        """Everything that went wrong, one entry each (empty when all went well)."""

    @property
    def partial(self) -> bool:
        """True if the stage finished with problems (exit code "partial", or "failed" for
        verify)."""
        return bool(self.problems())

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole report."""

"""What a shift run reports: where it ended and why, each move's timing and gate checks,
the rollback (how long from a failed gate to the old records back), and the records before
and after. Names, records and measurements only: safe to print and to store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrator.run.report import Problem, StageReport
from migrator.traffic.records import RecordState, state_to_dict

DONE, PAUSED, ROLLED_BACK, STOPPED = "done", "paused", "rolled-back", "stopped"


@dataclass
class ShiftReport(StageReport):
    """``outcome`` is done, paused (waiting for approval), rolled-back, or stopped (the
    records changed under the shift, or the provider stayed unreachable: ``reason`` says)."""

    id: str
    provider: str
    names: list[str]
    outcome: str
    state_url: str
    reason: str = ""
    move: int = 0
    moves: list[dict[str, Any]] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    unrestored: list[str] = field(default_factory=list)
    original: RecordState = field(default_factory=dict)
    final: RecordState = field(default_factory=dict)
    took_over: bool = False
    seconds: float = 0.0

    def problems(self) -> list[Problem]:
        found = []
        if self.outcome in (ROLLED_BACK, STOPPED):
            found.append(Problem(f"shift {self.id}", f"{self.outcome}: {self.reason}"))
        found += [
            Problem(name, "changed by someone else: not rolled back") for name in self.unrestored
        ]
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "names": self.names,
            "outcome": self.outcome,
            "reason": self.reason,
            "move": self.move,
            "state": self.state_url,
            "tookOver": self.took_over,
            "moves": self.moves,
            "rollback": self.rollback,
            "unrestored": self.unrestored,
            "original": state_to_dict(self.original),
            "final": state_to_dict(self.final),
            "seconds": round(self.seconds, 3),
        }

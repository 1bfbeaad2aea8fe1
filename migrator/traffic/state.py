"""A shift's state, kept in the store with the migration: ``<ID>/traffic/state.json``.

One JSON document, replaced whole at every turn (a store's put is all or nothing): the
settings' fingerprint, the routes, the records saved before anything changed
(``original``), where the shift is (``phase`` and ``move``), what the records hold as far
as the shift knows (``written``) and, while a batch is in flight, what it writes
(``pending``), when the current move was written (wall clock, so a resumed run waits only
what is left), the approvals given, every gate check, and the latest events. A crash at any
point leaves a state from which ``--resume`` knows exactly what to check and what to do.
``report.json`` beside it holds the last run's report.

Phases: ``ready`` (the move is next, nothing of it written), ``paused`` (the move waits for
a person's approval), ``writing`` (its batch in flight), ``written`` (waiting and gating),
``rolling-back``, and the ends: ``done`` and ``rolled-back``. ``stopped`` says why a run
stopped without an end (the records changed under it, the provider stayed unreachable);
the phase then still says where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migrator.errors import StoreKeyNotFound, StoreNotFound
from migrator.store.base import Store
from migrator.traffic.records import RecordState, Route, state_from_dict, state_to_dict

READY, PAUSED, WRITING, WRITTEN = "ready", "paused", "writing", "written"
ROLLING_BACK = "rolling-back"
DONE, ROLLED_BACK = "done", "rolled-back"
FINAL = (DONE, ROLLED_BACK)
EVENTS_KEPT = 200


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ShiftState:
    """See the module doc."""

    id: str
    fingerprint: dict[str, Any]
    settings: dict[str, Any]
    routes: dict[str, Route]
    original: RecordState
    written: RecordState
    phase: str = READY
    move: int = 0
    stopped: str = ""
    pending: RecordState | None = None
    written_at: float | None = None
    took_over: bool = False
    cached_ttls: dict[str, int | None] = field(default_factory=dict)
    approved: list[int] = field(default_factory=list)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    moves: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    earlier: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = field(default_factory=now_iso)

    @property
    def finished(self) -> bool:
        return self.phase in FINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "move": self.move,
            "reason": self.reason,
            "stopped": self.stopped,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "routes": {n: r.to_dict() for n, r in self.routes.items()},
            "tookOver": self.took_over,
            "cachedTtls": self.cached_ttls,
            "original": state_to_dict(self.original),
            "written": state_to_dict(self.written),
            "pending": state_to_dict(self.pending) if self.pending is not None else None,
            "writtenAt": self.written_at,
            "approved": self.approved,
            "moves": self.moves,
            "checks": self.checks,
            "events": self.events[-EVENTS_KEPT:],
            "earlier": self.earlier,
            "startedAt": self.started_at,
            "updatedAt": now_iso(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ShiftState:
        return cls(
            id=doc["id"],
            fingerprint=doc["fingerprint"],
            settings=doc.get("settings", {}),
            routes={n: Route.from_dict(r) for n, r in doc["routes"].items()},
            original=state_from_dict(doc["original"]),
            written=state_from_dict(doc["written"]),
            phase=doc["phase"],
            move=int(doc["move"]),
            stopped=doc.get("stopped", ""),
            pending=state_from_dict(doc["pending"]) if doc.get("pending") is not None else None,
            written_at=doc.get("writtenAt"),
            took_over=bool(doc.get("tookOver")),
            cached_ttls=dict(doc.get("cachedTtls", {})),
            approved=list(doc.get("approved", [])),
            checks=dict(doc.get("checks", {})),
            moves=dict(doc.get("moves", {})),
            reason=doc.get("reason", ""),
            events=list(doc.get("events", [])),
            earlier=list(doc.get("earlier", [])),
            started_at=doc.get("startedAt", now_iso()),
        )


class StateStore:
    """Where a shift's state lives: ``<id>/traffic/`` in ``store``."""

    def __init__(self, store: Store, shift_id: str) -> None:
        self.store = store
        self.id = shift_id
        self.prefix = f"{shift_id}/traffic/"

    @property
    def where(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.prefix}state.json"

    def load(self) -> ShiftState | None:
        try:
            raw = self.store.get_bytes(self.prefix + "state.json")
        except (StoreKeyNotFound, StoreNotFound):
            return None
        return ShiftState.from_dict(json.loads(raw))

    def save(self, state: ShiftState) -> None:
        self.store.put_bytes(self.prefix + "state.json", _dump(state.to_dict()))

    def save_report(self, report: dict[str, Any]) -> None:
        self.store.put_bytes(self.prefix + "report.json", _dump(report))


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, indent=1).encode() + b"\n"

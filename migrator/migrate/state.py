"""Where a plan's run lives in the store, and what it says about itself.

Under ``runs/<plan name>/`` of the plan's store::

    run.json          the journal's head: the plan it runs (its fingerprint), when it started
    phases/<step>     one record per finished step (a phase, or one pass of a phase)
    state.json        what the run is doing now: phase, status, what it waits for, who runs it
    control.json      what a person asked of it: {"pause": true} (``migrator pause``)
    traffic/          the traffic shift's own state (the traffic stage's StateStore)
    report.json       the last report, and its Markdown and HTML pages beside it

A run only ever appends records; ``state.json`` and ``control.json`` are small documents
replaced whole, so a reader (``migrator status``, on another machine) always sees one
consistent version.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from migrator.errors import StoreKeyNotFound, StoreNotFound
from migrator.store.base import Store

RUNS = "runs"
STATE = "state.json"
CONTROL = "control.json"
RECORDS = "phases"
REHEARSALS = "rehearsals"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch of an ISO time (None when absent or malformed)."""
    parsed = parse_iso(text)
    return parsed.timestamp() if parsed else None


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class RunStore:
    """The documents of plan ``name``'s run in ``store`` (see the module doc)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.prefix = f"{RUNS}/{name}/"

    @property
    def url(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.prefix}"

    def load(self, relative: str) -> dict[str, Any] | None:
        """The JSON document at ``relative`` (None when missing or unreadable)."""
        try:
            doc = json.loads(self.store.get_bytes(self.prefix + relative))
        except (StoreKeyNotFound, StoreNotFound, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def save(self, relative: str, doc: Mapping[str, Any]) -> None:
        self.store.put_bytes(self.prefix + relative, json.dumps(doc, indent=1).encode() + b"\n")

    def put_text(self, relative: str, text: str) -> None:
        self.store.put_bytes(self.prefix + relative, text.encode())

    def rehearsals(self) -> list[str]:
        """The stamps of the rehearsals kept (``rehearsals/<stamp>.json``), oldest first."""
        base = f"{self.prefix}{REHEARSALS}/"
        return sorted(
            key[len(base) : -len(".json")]
            for key in self.store.list(base)
            if key.endswith(".json") and "/" not in key[len(base) :]
        )

    # -- what the run is doing ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return self.load(STATE) or {}

    def set_state(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into state.json, stamped with the time and this process."""
        state = self.state()
        state.update(fields)
        state.update(updatedAt=now_iso(), host=socket.gethostname(), pid=os.getpid())
        self.save(STATE, state)
        return state

    # -- what a person asked -----------------------------------------------------------------

    def control(self) -> dict[str, Any]:
        return self.load(CONTROL) or {}

    def request_pause(self, reason: str = "") -> None:
        self.save(CONTROL, {"pause": True, "at": now_iso(), "reason": reason})

    def clear_pause(self) -> None:
        self.save(CONTROL, {"pause": False, "at": now_iso()})

    def pause_requested(self) -> bool:
        return bool(self.control().get("pause"))

    def records(self) -> dict[str, dict[str, Any]]:
        """Every finished step's record, by step name."""
        found: dict[str, dict[str, Any]] = {}
        base = f"{self.prefix}{RECORDS}/"
        for key in self.store.list(base):
            doc = self.load(key[len(self.prefix) :])
            if doc is not None:
                found[key[len(base) :]] = doc
        return found

    def exists(self) -> bool:
        return self.load("run.json") is not None


def process_alive(state: Mapping[str, Any]) -> bool | None:
    """Whether the process the state names still runs: None when it ran on another host."""
    if state.get("host") != socket.gethostname():
        return None
    try:
        pid = int(state.get("pid") or 0)
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True

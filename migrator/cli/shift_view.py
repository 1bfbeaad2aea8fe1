"""The live view of a shift for people: the moves with the share each sends to the new
cluster, where the shift is, the last gate check, and the time to the next step.

On a terminal it is a rich ``Live`` table, redrawn as events come and every second (the
countdown); elsewhere (a pipe, a CI log) one line per event. Fed by the shift's events
(:mod:`migrator.traffic.runner`), the same ones ``-o json`` prints.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from migrator.traffic import ShiftPlan

# Events worth a line of their own when the output is not a terminal.
_LINES = {
    "saved": "records saved",
    "write": "writing {step}",
    "written": "written {step}",
    "check": "check {done}: {verdict}",
    "passed": "passed {step}",
    "paused": "paused before {step}: --resume to go on",
    "approved": "approved {step}",
    "took-over": "took over the records of {names}",
    "rollback": "ROLLING BACK: {reason}",
    "rolled-back": "rolled back: records restored in {seconds}s",
    "done": "done: every name on the new cluster",
    "stopped": "stopped: {reason}",
    "finished": "nothing to do: the shift is {outcome}",
}


class ShiftView:
    """See the module doc; use as a context manager, feed :meth:`event`."""

    def __init__(self, console: Console, plan: ShiftPlan) -> None:
        self.console = console
        self.plan = plan
        self.live: Live | None = None
        self.move = 0
        self.status: dict[int, str] = {}
        self.until: float | None = None
        self.last_check = ""
        self.note = ""

    def __enter__(self) -> ShiftView:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self, console=self.console, refresh_per_second=2, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        self.move = int(event.get("move", self.move))
        if kind in ("write", "written", "passed", "paused", "approved"):
            self.status[self.move] = kind
        if kind in ("written", "waiting"):
            self.until = event.get("until")
        if kind == "check":
            self.last_check = _verdict(event)
        if kind in ("rollback", "rolled-back", "stopped", "done", "took-over"):
            self.note = _LINES[kind].format(**{**event, "names": ", ".join(event.get("names", ()))})
            self.until = None
        if self.live is not None:
            self.live.refresh()
        elif kind in _LINES:
            stamp = datetime.now().strftime("%H:%M:%S")
            fields = {
                **event,
                "verdict": _verdict(event),
                "names": ", ".join(event.get("names", ())),
            }
            click.echo(f"{stamp} {_LINES[kind].format(**fields)}")

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"Shift: {', '.join(self.plan.names)}", title_justify="left")
        table.add_column("move")
        table.add_column("new share")
        table.add_column("state")
        for move in self.plan.moves:
            state = self.status.get(move.index, "")
            if move.index == self.move and state == "written":
                state = "checking" if move.gated else "waiting"
            table.add_row(move.label, ", ".join(f"{s:.0%}" for s in move.shares.values()), state)
        lines = []
        if self.until is not None:
            lines.append(f"next in {max(0.0, self.until - time.time()):.0f}s")
        if self.last_check:
            lines.append(f"last check: {self.last_check}")
        if self.note:
            lines.append(self.note)
        return Group(table, Text("\n".join(lines)))


def _verdict(event: dict[str, Any]) -> str:
    if event.get("event") != "check":
        return ""
    gates = "; ".join(
        f"{name} " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "ok")
        for name, stats in event.get("gates", {}).items()
    )
    head = "ok" if event["ok"] else ("could not tell" if event.get("temporary") else "FAILED")
    failures = "; ".join(event.get("failures", []))
    return (
        f"{head} ({event.get('failed', 0)} failed of {event.get('done', 0)})"
        + (f" {gates}" if gates else "")
        + (f": {failures}" if failures else "")
    )

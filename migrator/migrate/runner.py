"""A plan's run: every step in order, each recorded when it ends, resumable anywhere.

``migrate`` takes the run's lock (a Lease in the old cluster: one run per plan at a time,
taken over at once from a holder that died on this machine), opens the journal under
``runs/<plan>/`` of the store and runs each step the journal does not hold yet
(:func:`~.phases.steps`). A crash, a kill or ``migrator pause`` (honoured at the next step
boundary) leaves the journal as it was after the last finished step, so ``migrator resume``
(the same run again) goes on from there. A step that fails stops the run where it is: the
state says which and why, the report is written, and the error says what to do (resume
once fixed, or roll back). A plan changed since its run started is refused unless the
run starts over (``--restart``): half a migration done with one plan and half with another
is not something anyone can reason about.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from migrator.errors import (
    Interrupted,
    MigratorError,
    PhaseFailed,
    PreflightFailed,
    RunPaused,
    RunRefused,
    ShiftPaused,
    StoreError,
)
from migrator.kube.lease import Lease
from migrator.migrate import report as reports
from migrator.migrate.context import OnEvent, RunContext
from migrator.migrate.phases import RunIds, check, steps
from migrator.migrate.plan import Plan
from migrator.migrate.state import REHEARSALS, RunStore, epoch, now_iso, process_alive
from migrator.run import Journal

RUNNING, PAUSED, FAILED, DONE = "running", "paused", "failed", "done"
ROLLED_BACK, TORN_DOWN = "rolled-back", "torn-down"


def lease_name(plan: Plan) -> str:
    return f"migrator-run-{plan.name}"[:63].rstrip("-")


@contextmanager
def locked(ctx: RunContext, purpose: str) -> Iterator[None]:
    """The run's lock, held while ``purpose`` (migrate, rollback, teardown) works."""
    details = {"plan": ctx.plan.name, "store": ctx.plan.store.url, "command": purpose}
    with Lease(ctx.old, lease_name(ctx.plan), f"migration run of {ctx.plan.name}", details):
        yield


def open_journal(ctx: RunContext, *, restart: bool) -> Journal:
    """The run's journal; refuses a plan that changed since the run started."""
    head = ctx.runs.load("run.json")
    fingerprint = ctx.plan.fingerprint()
    if head is not None and not restart and head.get("fingerprint") != _plain(fingerprint):
        raise RunRefused(
            f"the plan {ctx.plan.name} changed since its run started "
            f"({head.get('startedAt')}): a run goes on with the plan it started with",
            hint="undo the change to resume, or start over with `migrator migrate --restart`",
        )
    describe = {
        "source": ctx.plan.source.context,
        "target": ctx.plan.target.context,
        "store": ctx.plan.store.url,
    }
    if restart:
        ctx.runs.store.delete_prefix(ctx.runs.prefix + "state.json")
        ctx.runs.store.delete_prefix(ctx.runs.prefix + "traffic/")
    return Journal(
        ctx.store, ctx.runs.prefix, fingerprint, describe, restart=restart, records="phases"
    )


def _plain(doc: Any) -> Any:
    import json

    return json.loads(json.dumps(doc))


def migrate(
    plan: Plan, *, restart: bool = False, on_event: OnEvent | None = None
) -> dict[str, Any]:
    """Run (or resume) ``plan``'s migration up to the end of the soak; returns the report.

    Raises :class:`RunPaused` when it stopped at a person's request or for an approval,
    :class:`PhaseFailed` when a step failed (the journal kept: resume goes on)."""
    with RunContext.open(plan, on_event=on_event) as ctx:
        if restart or not _started(ctx):
            # A run not started yet checks first: a plan that is not ready changes nothing,
            # not even a lock or a journal.
            try:
                ctx.checked = check(ctx)
            except PreflightFailed as exc:
                ctx.emit("end", status=FAILED, phase="preflight", message=str(exc))
                raise
        with locked(ctx, "migrate"), ctx.watching():
            journal = open_journal(ctx, restart=restart)
            ids = RunIds.of(plan, str(journal.run["startedAt"]))
            ctx.runs.clear_pause()
            done = ctx.runs.records()
            ctx.runs.set_state(
                status=RUNNING,
                startedAt=journal.run["startedAt"],
                snapshot=ids.snapshot,
                transformed=ids.transformed,
                error="",
                waiting="",
            )
            ctx.emit("run", status="resumed" if done else "started", runs=journal.run["runs"])
            for name, phase in steps(plan):
                if name in done:
                    continue
                if ctx.runs.pause_requested():
                    _stop(
                        ctx, PAUSED, name, "paused by `migrator pause`: `migrator resume` goes on"
                    )
                    raise RunPaused(
                        f"the run of {plan.name} paused before {name}",
                        hint="`migrator resume -f PLAN` goes on from there",
                    )
                _run_step(ctx, journal, ids, name, phase)
            ctx.runs.set_state(
                status=DONE,
                phase="teardown",
                waiting="traffic is on the new cluster: `migrator teardown -f PLAN --yes` "
                "retires the old one (or `migrator rollback -f PLAN`)",
            )
            report = write_report(ctx)
            ctx.emit("end", status=DONE, message=f"{plan.name}: migrated; ready for teardown")
            return report


def _started(ctx: RunContext) -> bool:
    try:
        return ctx.runs.exists()
    except StoreError:  # no bucket yet: the preflight says so
        return False


def _run_step(ctx: RunContext, journal: Journal, ids: RunIds, name: str, phase: Any) -> None:
    started_at, t0 = now_iso(), time.monotonic()
    ctx.runs.set_state(status=RUNNING, phase=name, phaseStartedAt=started_at, waiting="")
    ctx.emit("phase", phase=name, status="started")
    ctx.step(name)
    try:
        summary = phase(ctx, ids)
    except ShiftPaused as exc:
        _stop(ctx, PAUSED, name, str(exc))
        raise RunPaused(str(exc), hint=exc.hint) from exc
    except KeyboardInterrupt:
        _stop(ctx, FAILED, name, "interrupted")
        raise Interrupted(
            f"the run of {ctx.plan.name} was interrupted in {name}",
            hint="`migrator resume -f PLAN` goes on from that step",
        ) from None
    except MigratorError as exc:
        _stop(ctx, FAILED, name, str(exc))
        raise PhaseFailed(
            name,
            str(exc),
            hint=exc.hint
            or "fix the cause, then `migrator resume -f PLAN` runs this step "
            "again (or `migrator rollback -f PLAN`)",
        ) from exc
    seconds = time.monotonic() - t0
    status = "skipped" if "skipped" in summary else "done"
    journal.record(
        name,
        {
            "phase": name,
            "status": status,
            "startedAt": started_at,
            "endedAt": now_iso(),
            "seconds": round(seconds, 3),
            "summary": summary,
            "problems": list(summary.get("problems", [])),
            "runs": journal.run["runs"],
        },
    )
    ctx.emit("phase", phase=name, status=status, seconds=round(seconds, 1), summary=summary)


def _stop(ctx: RunContext, status: str, phase: str, why: str) -> None:
    ctx.runs.set_state(
        status=status, phase=phase, error=why if status == FAILED else "", waiting=why
    )
    write_report(ctx)
    ctx.emit("end", status=status, phase=phase, message=why)


def write_report(ctx: RunContext, **extra: Any) -> dict[str, Any]:
    """Build the run's report from its journal and state, keep it in the store as JSON,
    Markdown and HTML, and return its JSON form."""
    report = build_report(ctx.plan, ctx.runs, **extra)
    doc = report.to_dict()
    ctx.runs.save("report.json", doc)
    ctx.runs.put_text("report.md", reports.markdown(report))
    ctx.runs.put_text("report.html", reports.html(report))
    return doc


def build_report(plan: Plan, runs: RunStore, **extra: Any) -> reports.RunReport:
    """The report of ``plan``'s run as its journal and state tell it."""
    state = runs.state()
    records = runs.records()
    head = runs.load("run.json") or {}
    phases = []
    names = [name for name, _phase in steps(plan)]
    names += sorted(n for n in records if n.startswith("teardown") or n.startswith("rollback"))
    for name in names:
        record = records.get(name)
        if record is not None:
            phases.append(
                reports.PhaseReport(
                    name=name,
                    status=record.get("status", "done"),
                    started_at=epoch(record.get("startedAt")),
                    ended_at=epoch(record.get("endedAt")),
                    seconds=float(record.get("seconds") or 0.0),
                    summary=record.get("summary", {}),
                    problems=list(record.get("problems", [])),
                    resumed=max(0, int(record.get("runs", 1)) - 1),
                )
            )
        elif state.get("phase") == name and state.get("status") in (RUNNING, FAILED, PAUSED):
            status = "failed" if state.get("status") == FAILED else "running"
            phases.append(
                reports.PhaseReport(
                    name=name,
                    status=status if state.get("status") != PAUSED else "pending",
                    started_at=epoch(state.get("phaseStartedAt")),
                    ended_at=None,
                    summary={},
                    problems=[state["error"]] if state.get("error") else [],
                    resumed=0,
                )
            )
        else:
            phases.append(reports.PhaseReport(name))
    preflight = records.get("preflight", {}).get("summary")
    ended = [p.ended_at for p in phases if p.ended_at]
    return reports.RunReport(
        plan_name=plan.name,
        source=plan.source.context,
        target=plan.target.context,
        store=plan.store.url,
        status=str(extra.pop("status", state.get("status", "pending"))),
        started_at=epoch(head.get("startedAt")),
        ended_at=max(ended) if ended else None,
        phases=phases,
        preflight=preflight,
        alerts=list(state.get("alerts", [])),
        rto_seconds=extra.pop("rto_seconds", None),
        rpo_seconds=extra.pop("rpo_seconds", None),
        extra={"snapshot": state.get("snapshot"), "transformed": state.get("transformed"), **extra},
    )


# --- what people ask of a run ---------------------------------------------------------------


def _runs(plan: Plan) -> RunStore:
    ctx = RunContext.open(plan)
    if not ctx.runs.exists():
        raise RunRefused(
            f"plan {plan.name} has no run in {ctx.runs.url}",
            hint="start it with `migrator migrate -f PLAN`",
        )
    return ctx.runs


def pause(plan: Plan) -> dict[str, Any]:
    """Ask the running migration to stop at its next step boundary."""
    runs = _runs(plan)
    state = runs.state()
    if state.get("status") != RUNNING:
        raise RunRefused(
            f"the run of {plan.name} is not running (it is {state.get('status', 'not started')})"
        )
    runs.request_pause("migrator pause")
    return status(plan)


def status(plan: Plan) -> dict[str, Any]:
    """What the run is doing: its phase and status, what it waits for, whether the process
    that runs it is alive, and the journal (every finished step)."""
    runs = _runs(plan)
    state = runs.state()
    records = runs.records()
    names = [name for name, _phase in steps(plan)]
    alive = process_alive(state)
    shown = state.get("status", "pending")
    if shown == RUNNING and alive is False:
        shown = "interrupted"
    return {
        "plan": plan.name,
        "status": shown,
        "phase": state.get("phase"),
        "waiting": state.get("waiting", ""),
        "error": state.get("error", ""),
        "pauseRequested": runs.pause_requested(),
        "process": {"host": state.get("host"), "pid": state.get("pid"), "alive": alive},
        "updatedAt": state.get("updatedAt"),
        "alerts": state.get("alerts", []),
        "journal": [
            {
                "step": name,
                "status": record.get("status"),
                "endedAt": record.get("endedAt"),
                "seconds": record.get("seconds"),
            }
            for name, record in sorted(records.items(), key=lambda kv: _order(names, kv))
        ],
        "steps": names,
    }


def _order(names: list[str], item: tuple[str, dict[str, Any]]) -> tuple[int, str]:
    """A journal record's place: the run's own steps in their order, then the rest (teardown,
    rollback) by when they ended."""
    name, record = item
    return (names.index(name) if name in names else len(names), record.get("endedAt") or "")


def rehearsal_report(plan: Plan, rehearsal: str = "latest") -> reports.RunReport:
    """A rehearsal's report as kept in the store: the newest (``latest``), or the one whose
    stamp ``rehearsal`` gives."""
    runs = RunContext.open(plan).runs
    stamps = runs.rehearsals()
    if not stamps:
        raise RunRefused(
            f"plan {plan.name} has no rehearsal in {runs.url}",
            hint="run one with `migrator rehearse -f PLAN --scratch CONTEXT`",
        )
    stamp = stamps[-1] if rehearsal == "latest" else rehearsal
    doc = runs.load(f"{REHEARSALS}/{stamp}.json") if stamp in stamps else None
    if doc is None:
        raise RunRefused(
            f"plan {plan.name} has no rehearsal {rehearsal!r} in {runs.url}",
            hint=f"its rehearsals, newest last: {', '.join(stamps[-5:])}",
        )
    return reports.RunReport.from_dict(doc)


def last_report(plan: Plan) -> reports.RunReport:
    """The report of the last run, as stored (rebuilt from the journal if it is missing)."""
    runs = _runs(plan)
    doc = runs.load("report.json")
    return reports.RunReport.from_dict(doc) if doc else build_report(plan, runs)

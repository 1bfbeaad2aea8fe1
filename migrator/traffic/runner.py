"""Running a shift: move after move, each written, waited on, gated; rolled back on its own.

:func:`survey` reads what a shift starts from (the records, who owns them, where each name
points on each cluster) and plans it; :func:`apply` follows a plan, keeping its state in the
store after every turn (:mod:`~migrator.traffic.state`), so that:

- a step whose gate fails puts every name back on the records saved before the shift, at
  once, and says why (the report and ``rollback`` event give the gate's reason and how long
  the rollback took);
- a move that needs approval pauses the run (it ends, state ``paused``); ``--resume`` is the
  approval: one health check, then the move;
- a run killed at any point continues with ``--resume``: what the records hold is read and
  compared with what the state says they should hold (a batch in flight may or may not have
  landed), waits resume where they were (times are wall-clock), and a step's gate runs again;
- ``--abort`` rolls back from wherever the shift is, even once done (until teardown);
- records that someone else changed are never written over: the run stops
  (:class:`~migrator.errors.RecordsChanged`) unless told to take over; a rollback leaves
  such names as they are and lists them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from migrator.errors import ConfigError, MigratorError, RecordsChanged
from migrator.kube import Cluster
from migrator.traffic import endpoints
from migrator.traffic.gates import Check, GateRunner, Outcome, StepContext, build_gates
from migrator.traffic.plan import Move, ShiftPlan, check_start, route_for
from migrator.traffic.plan import plan as make_plan
from migrator.traffic.providers.base import Provider
from migrator.traffic.providers.externaldns import refuse_if_owned
from migrator.traffic.records import Records, RecordState, Targets, changes, state_to_dict
from migrator.traffic.report import DONE, PAUSED, ROLLED_BACK, STOPPED, ShiftReport
from migrator.traffic.settings import ShiftSettings, Side
from migrator.traffic.state import DONE as STATE_DONE
from migrator.traffic.state import (
    FINAL,
    READY,
    ROLLING_BACK,
    WRITING,
    WRITTEN,
    ShiftState,
    StateStore,
    now_iso,
)
from migrator.traffic.state import PAUSED as STATE_PAUSED
from migrator.traffic.state import ROLLED_BACK as STATE_ROLLED_BACK

log = logging.getLogger(__name__)

Event = dict[str, Any]
OnEvent = Callable[[Event], None]
START, RESUME, ABORT = "start", "resume", "abort"


def survey(
    settings: ShiftSettings,
    provider: Provider,
    clusters: Mapping[str, Cluster] | None = None,
    *,
    take_over: bool = False,
) -> ShiftPlan:
    """Read the records and where each name points, check the shift may start from them,
    and plan it (changes nothing). Refuses records external-dns owns unless the shift goes
    through external-dns, and records not wholly on the old targets unless ``take_over``."""
    provider.check()
    names = settings.dns_names
    found = provider.read(names)
    if provider.kind != "external-dns":
        refuse_if_owned(provider, names, settings.txt_prefix, settings.txt_suffix)
    routes = {
        spec.name: route_for(
            spec.name,
            _targets(settings, provider, clusters, spec.name, spec.old, "old"),
            _targets(settings, provider, clusters, spec.name, spec.new, "new"),
            found[spec.name],
            settings.provider.set_ids[0],
        )
        for spec in settings.names
    }
    original = check_start(settings, provider, routes, found, take_over=take_over)
    return make_plan(
        settings,
        provider,
        original,
        routes,
        took_over=original != found,
        cached_ttls=provider.cached_ttls(found),
    )


def _targets(
    settings: ShiftSettings,
    provider: Provider,
    clusters: Mapping[str, Cluster] | None,
    name: str,
    side: Side,
    which: str,
) -> Targets | None:
    if side.targets is not None:
        return side.targets
    if side.ref is not None:
        cluster = (clusters or {}).get(which)
        if cluster is None:
            flag = "--from" if which == "old" else "--to"
            raise ConfigError(
                f"{name}: the {which} targets are read from {side.ref}: give "
                f"the {which} cluster's context ({flag} CONTEXT)"
            )
        return endpoints.targets_from(cluster, side.ref, timeout=settings.endpoint_timeout)
    return provider.default_targets(name, which)


def replan(settings: ShiftSettings, provider: Provider, state: ShiftState) -> ShiftPlan:
    """The plan of a shift already under way, from the records and routes its state saved
    (the settings must be those it started with)."""
    if state.fingerprint != settings.fingerprint():
        raise ConfigError(
            f"shift {state.id} was started with other settings (names, provider, zone or "
            "steps): a shift must go on as it started",
            hint="run it with the settings it started with, or --abort it and start another",
        )
    return make_plan(
        settings,
        provider,
        state.original,
        state.routes,
        took_over=state.took_over,
        cached_ttls=state.cached_ttls,
    )


def apply(
    plan: ShiftPlan,
    provider: Provider,
    states: StateStore,
    *,
    mode: str = START,
    take_over: bool = False,
    gates: GateRunner | None = None,
    on_event: OnEvent | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ShiftReport:
    """Run the shift of ``plan`` (``mode``: start, resume or abort); see the module doc.
    Returns the report of a run that ended (done, paused, rolled back); raises
    :class:`RecordsChanged` or the provider's error when it stopped, its state saved."""
    state = _new_state(plan, states) if mode == START else states.load()
    if state is None:
        raise ConfigError(
            f"there is no shift {states.id} to {mode} ({states.where} is missing)",
            hint="start it without --resume/--abort",
        )
    gates = gates or build_gates(
        plan.settings.gates, list(plan.routes.values()), clock=clock, sleep=sleep
    )
    run = _Run(
        plan,
        provider,
        states,
        state,
        gates,
        take_over=take_over,
        on_event=on_event,
        clock=clock,
        sleep=sleep,
    )
    return run.abort("aborted by the user") if mode == ABORT else run.go(mode == RESUME)


def check_startable(states: StateStore) -> ShiftState | None:
    """The state of an earlier attempt that rolled back (a new shift may start over it), or
    None; raises :class:`ConfigError` if the shift is under way or done."""
    existing = states.load()
    if existing is not None and existing.phase != STATE_ROLLED_BACK:
        where = (
            "is done: --abort rolls it back"
            if existing.phase == STATE_DONE
            else f"is under way ({existing.phase}, move {existing.move}): --resume goes on, "
            "--abort rolls back"
        )
        raise ConfigError(f"shift {states.id} {where}", hint="or give another --id")
    return existing


def _new_state(plan: ShiftPlan, states: StateStore) -> ShiftState:
    existing = check_startable(states)
    earlier: list[dict[str, Any]] = []
    if existing is not None:
        outcome = {
            "startedAt": existing.started_at,
            "outcome": existing.phase,
            "reason": existing.reason,
        }
        earlier = [*existing.earlier, outcome]
    return ShiftState(
        id=states.id,
        fingerprint=plan.settings.fingerprint(),
        settings=plan.settings.to_dict(),
        routes=dict(plan.routes),
        original=dict(plan.original),
        written=dict(plan.original),
        took_over=plan.took_over,
        cached_ttls=dict(plan.cached_ttls),
        earlier=earlier,
    )


class _Run:
    """One run of a shift: the state machine of the module doc."""

    def __init__(
        self,
        plan: ShiftPlan,
        provider: Provider,
        states: StateStore,
        state: ShiftState,
        gates: GateRunner,
        *,
        take_over: bool,
        on_event: OnEvent | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.plan = plan
        self.provider = provider
        self.states = states
        self.state = state
        self.gates = gates
        self.take_over = take_over
        self.on_event = on_event
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.rollback: dict[str, Any] | None = None
        self.unrestored: list[str] = []

    # --- the run --------------------------------------------------------------------

    def go(self, resumed: bool) -> ShiftReport:
        st = self.state
        if st.phase in FINAL:
            self.emit("finished", outcome=st.phase)
            return self.report()
        if st.phase == ROLLING_BACK:
            return self.roll_back(st.reason)
        approve = resumed and st.phase == STATE_PAUSED
        if not resumed:
            self.emit(
                "saved",
                original=state_to_dict(st.original),
                routes={n: r.to_dict() for n, r in st.routes.items()},
            )
        st.stopped = ""
        self.save()
        try:
            self.reconcile()
            return self.loop(approve)
        except MigratorError as exc:
            st.stopped = str(exc)
            self.save()
            self.emit("stopped", reason=str(exc))
            self.states.save_report(self.report(STOPPED).to_dict())
            raise

    def loop(self, approve: bool) -> ShiftReport:
        st, moves = self.state, self.plan.moves
        while True:
            move = moves[st.move]
            if st.phase == STATE_PAUSED:
                if not approve:
                    return self.report(PAUSED)
                st.approved.append(st.move)
                st.phase = READY
                self.emit("approved")
                failed = self.recheck()
                if failed:
                    return self.roll_back(failed)
            if st.phase == READY:
                if move.approve and st.move not in st.approved:
                    st.phase = STATE_PAUSED
                    self.save()
                    self.emit("paused")
                    return self.finish(PAUSED)
                self.write(move)
            if st.phase == WRITTEN:
                outcome = self.settle(move)
                if not outcome.passed:
                    return self.roll_back(outcome.reason, failed_at=outcome.failed_at)
                self.note(move.index, passedAt=self.clock())
                self.emit("passed")
                if st.move == len(moves) - 1:
                    st.phase = STATE_DONE
                    self.save()
                    self.emit("done")
                    return self.finish(DONE)
                st.move += 1
                st.phase = READY
                self.save()

    def reconcile(self) -> None:
        """Compare the records with what the state says they hold; a batch in flight is
        settled either way; anything else is someone else's change (module doc)."""
        st = self.state
        current = self.provider.read(self.plan.names)
        if st.phase == WRITING and st.pending is not None:
            if self._matches(current, st.pending):
                st.written, st.pending, st.phase = st.pending, None, WRITTEN
                st.written_at = self.clock()
                self.save()
                return
            ours = all(
                self._ours(current.get(n, ()), st.written.get(n, ()), st.pending.get(n, ()))
                for n in self.plan.names
            )
            if ours:  # not landed, or landed in part (external-dns: one object at a time)
                st.written, st.pending, st.phase = dict(current), None, READY
                self.save()
                return
        elif self._matches(current, st.written):
            return
        differ = [
            n
            for n in self.plan.names
            if not self.provider.matches(current.get(n, ()), st.written.get(n, ()))
        ]
        if not self.take_over:
            raise RecordsChanged(
                "the records of " + ", ".join(differ) + " are not those this shift wrote last "
                "(someone else changed them): nothing was written over them",
                names=differ,
            )
        self.emit("took-over", names=differ, found=state_to_dict({n: current[n] for n in differ}))
        st.written = dict(current)
        st.pending = None
        if st.phase in (WRITING, WRITTEN):
            st.phase = READY
        self.save()

    @staticmethod
    def _ours(current: Records, written: Records, pending: Records) -> bool:
        """Whether a name's records are each ours, as written or as pending, and as many."""
        return set(current) <= set(written) | set(pending) and len(current) in (
            len(written),
            len(pending),
        )

    def _matches(self, current: RecordState, expected: RecordState) -> bool:
        return all(
            self.provider.matches(current.get(n, ()), expected.get(n, ())) for n in self.plan.names
        )

    def write(self, move: Move) -> None:
        st = self.state
        batch = changes(st.written, move.records)
        current = self.provider.read(self.plan.names)
        if not self._matches(current, st.written):
            self.reconcile()  # raises, or takes the records over (then the batch differs)
            batch = changes(st.written, move.records)
        st.phase, st.pending = WRITING, move.records
        self.save()
        self.emit("write", shares=move.shares, changes=[c.to_dict() for c in batch])
        self.provider.write(batch)
        st.written, st.pending, st.phase = move.records, None, WRITTEN
        st.written_at = self.clock()
        self.note(move.index, writtenAt=st.written_at)
        self.save()
        self.emit("written", shares=move.shares, until=st.written_at + move.wait)

    def settle(self, move: Move) -> Outcome:
        """Wait (at least the TTL) and, for a step, run its gates."""
        st = self.state
        started = st.written_at if st.written_at is not None else self.clock()
        self.emit("waiting", until=started + move.wait, gated=move.gated)
        if not move.gated:
            remaining = started + move.wait - self.clock()
            if remaining > 0:
                self.sleep(remaining)
            return Outcome(True)
        st.checks[str(move.index)] = []

        def on_check(check: Check, outcome: Outcome) -> None:
            st.checks[str(move.index)].append(check.to_dict())
            self.save()
            self.emit(
                "check",
                ok=check.ok,
                failures=check.failures,
                gates=check.to_dict()["gates"],
                failed=outcome.failed_checks,
                done=len(outcome.checks),
                temporary=check.temporary,
            )

        return self.gates.run(self.context(move), started, move.wait, on_check=on_check)

    def recheck(self) -> str:
        """One health check after a pause, before the next move ("" if it is fine or could
        not tell: the move's own gates tell then)."""
        if not self.gates.gates:
            return ""
        move = self.plan.moves[max(0, self.state.move - 1)]
        check = self.gates.check(self.context(move))
        self.emit(
            "check",
            ok=check.ok,
            failures=check.failures,
            gates=check.to_dict()["gates"],
            failed=int(not check.ok),
            done=1,
            temporary=check.temporary,
        )
        if check.ok or check.temporary:
            return ""
        return "the health check after the pause failed: " + "; ".join(check.failures)

    def context(self, move: Move) -> StepContext:
        return StepContext(self.state.id, move.index, move.percent, tuple(self.plan.names))

    # --- rolling back ---------------------------------------------------------------

    def abort(self, reason: str) -> ShiftReport:
        st = self.state
        if st.phase == STATE_ROLLED_BACK:
            self.emit("finished", outcome=st.phase)
            return self.report()
        if st.phase == WRITING and st.pending is not None:
            current = self.provider.read(self.plan.names)
            if self._matches(current, st.pending):
                st.written = st.pending
        return self.roll_back(reason)

    def roll_back(self, reason: str, *, failed_at: float | None = None) -> ShiftReport:
        """Put every name back on the records saved before the shift (module doc)."""
        st = self.state
        began = self.clock()
        if st.phase != ROLLING_BACK:
            st.phase, st.reason, st.pending = ROLLING_BACK, reason, None
            st.stopped = ""
            self.save()
        self.emit("rollback", reason=reason)
        current = self.provider.read(self.plan.names)
        ours = [
            n
            for n in self.plan.names
            if self.take_over
            or self.provider.matches(current.get(n, ()), st.written.get(n, ()))
            or self.provider.matches(current.get(n, ()), st.original.get(n, ()))
        ]
        self.unrestored = [n for n in self.plan.names if n not in ours]
        batch = [c for c in changes(current, st.original) if c.name in ours]
        try:
            self.provider.write(batch)
        except RecordsChanged:
            # someone changed a name meanwhile: restore the others one by one
            for change in batch:
                try:
                    self.provider.write([change])
                except RecordsChanged:
                    self.unrestored.append(change.name)
        restored = self.clock()
        st.written = {
            **current,
            **{c.name: c.after for c in batch if c.name not in self.unrestored},
        }
        st.phase = STATE_ROLLED_BACK
        self.rollback = {
            "reason": reason,
            "gateFailedAt": failed_at,
            "restoredAt": restored,
            "seconds": round(restored - (failed_at if failed_at is not None else began), 3),
            "unrestored": self.unrestored,
        }
        st.moves["rollback"] = self.rollback
        self.save()
        self.emit("rolled-back", **self.rollback)
        return self.finish(ROLLED_BACK)

    # --- bookkeeping ----------------------------------------------------------------

    def note(self, index: int, **fields: Any) -> None:
        self.state.moves.setdefault(str(index), {}).update(fields)

    def save(self) -> None:
        self.states.save(self.state)

    def emit(self, kind: str, **fields: Any) -> None:
        move = self.plan.moves[min(self.state.move, len(self.plan.moves) - 1)]
        event = {
            "event": kind,
            "at": now_iso(),
            "time": round(self.clock(), 3),
            "shift": self.state.id,
            "move": self.state.move,
            "step": move.label,
            "percent": move.percent,
            **fields,
        }
        self.state.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def finish(self, outcome: str) -> ShiftReport:
        report = self.report(outcome)
        self.states.save_report(report.to_dict())
        return report

    def report(self, outcome: str | None = None) -> ShiftReport:
        st = self.state
        if outcome is None:
            outcome = {STATE_DONE: DONE, STATE_ROLLED_BACK: ROLLED_BACK}.get(st.phase, STOPPED)
        moves = []
        for move in self.plan.moves:
            noted = st.moves.get(str(move.index), {})
            checks = st.checks.get(str(move.index), [])
            moves.append(
                {
                    "index": move.index,
                    "label": move.label,
                    "percent": move.percent,
                    "shares": {n: round(s, 4) for n, s in move.shares.items()},
                    "writtenAt": noted.get("writtenAt"),
                    "passedAt": noted.get("passedAt"),
                    "checks": len(checks),
                    "failedChecks": sum(not c["ok"] for c in checks if not c.get("temporary")),
                }
            )
        return ShiftReport(
            id=st.id,
            provider=self.provider.kind,
            names=self.plan.names,
            outcome=outcome,
            state_url=self.states.where,
            reason=st.stopped or st.reason,
            move=st.move,
            moves=moves,
            rollback=self.rollback or st.moves.get("rollback"),
            unrestored=self.unrestored,
            original=st.original,
            final=st.written,
            took_over=st.took_over,
            seconds=self.clock() - self.started,
        )

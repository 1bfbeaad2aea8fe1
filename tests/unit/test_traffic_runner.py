"""The shift's plan and state machine, on records kept in memory and a fake clock: whole
shifts, rollbacks, pauses, crashes at every turn, and records someone else changed."""
from __future__ import annotations

from collections.abc import Sequence

import pytest

from migrator.errors import ConfigError, RecordsChanged
from migrator.store import LocalStore
from migrator.traffic import (
    ABORT,
    RESUME,
    START,
    StateStore,
    apply,
    check_startable,
    parse,
    plan,
    replan,
)
from migrator.traffic.gates import Gate, GateRunner, StepContext, Verdict
from migrator.traffic.plan import check_start, route_for
from migrator.traffic.providers.base import Provider, guard_failed
from migrator.traffic.providers.rfc2136 import render_round_robin
from migrator.traffic.records import Change, Record, Records, RecordState, Route, records

pytestmark = pytest.mark.unit

A, B = "a.example.test.", "b.example.test."
OLD = {A: ("10.0.0.1", "10.0.0.2"), B: ("10.0.0.3",)}
NEW = {A: ("10.1.0.1", "10.1.0.2"), B: ("10.1.0.3",)}


class Crash(BaseException):
    """Stands for the process being killed: nothing catches it."""


class Memory(Provider):
    """Records in memory, guarded like a real provider; ``crash`` kills the run around a
    batch ("before" or "after" applying it)."""

    kind = "memory"

    def __init__(self, settings, recs: RecordState) -> None:
        super().__init__(settings, sleep=lambda _s: None)
        self.records = dict(recs)
        self.batches: list[list[Change]] = []
        self.crash: str = ""

    def check(self) -> None:
        pass

    def read(self, names: Sequence[str]) -> RecordState:
        return {n: self.records.get(n, ()) for n in names}

    def render(self, route: Route, percent: int, ttl: int, original: Records = ()) -> Records:
        return render_round_robin(route, percent, ttl)

    def send(self, changes: Sequence[Change]) -> None:
        if self.crash == "before":
            raise Crash
        moved = [c for c in changes if self.records.get(c.name, ()) != c.before]
        if moved:
            raise guard_failed(moved, "prerequisites")
        for c in changes:
            self.records[c.name] = c.after
            if self.crash == "partway":  # a provider that is not atomic (external-dns)
                raise Crash
        self.batches.append(list(changes))
        if self.crash == "after":
            raise Crash


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class Health(Gate):
    """Healthy unless the step's percentage is in ``failing``; can crash at a percentage."""

    name = "health"

    def __init__(self) -> None:
        self.failing: set[int] = set()
        self.crash_at: int | None = None
        self.steps: list[int] = []

    def check(self, step: StepContext) -> Verdict:
        if step.percent == self.crash_at:
            self.crash_at = None
            raise Crash
        self.steps.append(step.percent)
        ok = step.percent not in self.failing
        return Verdict(self.name, ok, () if ok else (f"HTTP 503 at {step.percent} %",))


def original(ttl: int = 60) -> RecordState:
    return {n: (Record(n, "A", ttl, OLD[n]),) for n in (A, B)}


class World:
    """A shift's surroundings: settings, provider, store, clock, gates."""

    def __init__(self, tmp_path, *, steps=(0, 10, 25, 50, 100), ttl=60) -> None:
        self.settings = parse({
            "provider": {"kind": "rfc2136", "rfc2136": {"server": "127.0.0.1", "zone": "example.test"}},
            "names": [{"name": n, "new": list(NEW[n])} for n in (A, B)],
            "steps": list(steps), "ttl": 5, "stepWait": 10,
            "gates": {"interval": 2, "checks": 3, "threshold": 2},
        })
        self.provider = Memory(self.settings.provider, original(ttl))
        self.states = StateStore(LocalStore(str(tmp_path / "store")), "m1")
        (tmp_path / "store").mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.health = Health()
        self.events: list[dict] = []

    def plan(self, *, take_over: bool = False):
        found = self.provider.read([A, B])
        routes = {n: route_for(n, None, self.settings.names[i].new.targets, found[n], "old")
                  for i, n in enumerate((A, B))}
        start = check_start(self.settings, self.provider, routes, found, take_over=take_over)
        return plan(self.settings, self.provider, start, routes, took_over=start != found)

    def run(self, mode: str = START, *, take_over: bool = False):
        state = self.states.load() if mode != START else check_startable(self.states)
        shift_plan = (replan(self.settings, self.provider, state)
                      if state is not None and mode != START else self.plan(take_over=take_over))
        gates = GateRunner(self.settings.gates, [self.health], clock=self.clock,
                           sleep=self.clock.sleep)
        return apply(shift_plan, self.provider, self.states, mode=mode, take_over=take_over,
                     gates=gates, on_event=self.events.append, clock=self.clock,
                     sleep=self.clock.sleep)

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


def final(ttl: int = 60) -> RecordState:
    return {n: (Record(n, "A", ttl, NEW[n]),) for n in (A, B)}


def test_the_plan_lowers_the_ttl_steps_and_restores_it(tmp_path):
    world = World(tmp_path)
    moves = world.plan().moves
    assert [(m.kind, m.percent) for m in moves] == [
        ("prepare", 0), ("step", 0), ("step", 10), ("step", 25), ("step", 50), ("step", 100),
        ("finish", 100)]
    prepare, *steps, finish = moves
    assert prepare.records == original(ttl=5) and prepare.wait == 60 and not prepare.gated
    assert all(m.wait == 10 and m.gated for m in steps)
    assert [m.shares[A] for m in steps] == [0, 0, pytest.approx(1 / 3), 0.5, 1]
    assert [m.shares[B] for m in steps] == [0, 0, 0, 0.5, 1]
    assert finish.records == final(ttl=60) and finish.wait == 0
    assert steps[3].records[A] == (Record(A, "A", 5, OLD[A] + NEW[A]),)
    assert steps[0].changes == () and len(steps[4].changes) == 2


def test_a_shift_runs_to_the_end_and_waits_out_the_old_ttl(tmp_path):
    world = World(tmp_path)
    started = world.clock.now
    report = world.run()
    assert report.outcome == "done" and not report.partial
    assert world.provider.records == final()
    assert report.final == final() and report.original == original()
    # 60 s for the old TTL, then five steps of at least 10 s (checks every 2 s, the last
    # after the wait)
    assert world.clock.now - started == pytest.approx(60 + 5 * 10)
    assert world.kinds()[:3] == ["saved", "write", "written"]
    assert world.kinds()[-1] == "done"
    state = world.states.load()
    assert state.phase == "done" and state.original == original()
    assert len(world.provider.batches) == 5  # prepare, 25 % (a moves), 50, 100, finish


def test_a_failed_gate_rolls_every_name_back_exactly(tmp_path):
    world = World(tmp_path)
    world.health.failing = {50}
    report = world.run()
    assert report.outcome == "rolled-back" and report.partial
    assert world.provider.records == original()  # the TTL too
    assert "2 of 2 checks failed; last: HTTP 503 at 50 %" in report.reason
    assert report.rollback["seconds"] == 0 and report.rollback["unrestored"] == []
    assert world.kinds()[-2:] == ["rollback", "rolled-back"]
    assert world.health.steps[-2:] == [50, 50]
    assert world.states.load().phase == "rolled-back"
    # started again after a rollback: the earlier attempt is kept
    world.health.failing = set()
    assert world.run().outcome == "done"
    assert world.states.load().earlier[0]["outcome"] == "rolled-back"


def test_approval_pauses_and_resume_continues_to_the_same_end(tmp_path):
    world = World(tmp_path, steps=(0, 25, {"weight": 50, "approve": True}, 100))
    report = world.run()
    assert report.outcome == "paused" and report.moves[report.move]["label"] == "50 % to new"
    assert world.provider.records[B] == (Record(B, "A", 5, OLD[B]),)
    assert world.states.load().phase == "paused"
    report = world.run(RESUME)
    assert report.outcome == "done" and world.provider.records == final()
    assert "approved" in world.kinds()


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("batch", [0, 1, 2, 3, 4])
def test_a_crash_around_any_batch_resumes_to_the_same_end(tmp_path, where, batch):
    world = World(tmp_path)
    sent = world.provider.send

    def crash_on(changes):
        world.provider.crash = where if len(world.provider.batches) == batch else ""
        sent(changes)

    world.provider.send = crash_on  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.run()
    assert world.states.load().phase == "writing"
    world.provider.send = sent  # type: ignore[method-assign]
    world.provider.crash = ""
    report = world.run(RESUME)
    assert report.outcome == "done" and world.provider.records == final()


def test_a_crash_during_a_gate_resumes_with_the_gate_again(tmp_path):
    world = World(tmp_path)
    world.health.crash_at = 50
    with pytest.raises(Crash):
        world.run()
    state = world.states.load()
    moves = replan(world.settings, world.provider, state).moves
    assert state.phase == "written" and moves[state.move].percent == 50
    world.clock.now += 3  # the restart took a while: only the rest of the wait is waited
    report = world.run(RESUME)
    assert report.outcome == "done" and world.provider.records == final()
    assert world.health.steps.count(50) >= 3


def test_records_changed_between_steps_stop_the_shift_and_are_not_overwritten(tmp_path):
    world = World(tmp_path, steps=(0, {"weight": 50, "approve": True}, 100))
    assert world.run().outcome == "paused"
    theirs = (Record(B, "A", 5, ("192.0.2.9",)),)
    world.provider.records[B] = theirs
    with pytest.raises(RecordsChanged) as caught:
        world.run(RESUME)
    assert caught.value.names == [B] and caught.value.exit_code == 11
    assert world.provider.records[B] == theirs
    state = world.states.load()
    assert state.stopped and state.phase == "paused"
    # told to take over, the shift adopts their records and goes on from them
    report = world.run(RESUME, take_over=True)
    assert report.outcome == "done" and world.provider.records == final()
    assert "took-over" in world.kinds()


def test_a_change_between_read_and_write_fails_the_guard(tmp_path):
    world = World(tmp_path)
    read = world.provider.read

    def read_then_change(names):
        found = read(names)
        if len(world.provider.batches) == 2:
            world.provider.records[A] = (Record(A, "A", 5, ("192.0.2.1",)),)
        return found

    world.provider.read = read_then_change  # type: ignore[method-assign]
    with pytest.raises(RecordsChanged, match="changed since they were read"):
        world.run()
    assert world.provider.records[A] == (Record(A, "A", 5, ("192.0.2.1",)),)


def test_a_rollback_leaves_names_someone_else_changed(tmp_path):
    world = World(tmp_path, steps=(0, {"weight": 50, "approve": True}, 100))
    world.run()
    theirs = (Record(A, "A", 5, ("192.0.2.9",)),)
    world.provider.records[A] = theirs
    report = world.run(ABORT)
    assert report.outcome == "rolled-back" and report.unrestored == [A]
    assert world.provider.records == {A: theirs, B: original()[B]}
    assert [p.what for p in report.problems()] == ["shift m1", A]


def test_abort_rolls_back_from_the_end_and_a_finished_shift_is_not_started_again(tmp_path):
    world = World(tmp_path)
    world.run()
    with pytest.raises(ConfigError, match="is done"):
        world.run()
    report = world.run(ABORT)
    assert report.outcome == "rolled-back" and world.provider.records == original()
    assert world.run(ABORT).outcome == "rolled-back"  # nothing more to do


def test_a_shift_under_way_is_not_started_twice_nor_resumed_with_other_steps(tmp_path):
    world = World(tmp_path, steps=(0, {"weight": 50, "approve": True}, 100))
    world.run()
    with pytest.raises(ConfigError, match="under way"):
        world.run()
    other = World(tmp_path, steps=(0, 20, 100))
    with pytest.raises(ConfigError, match="other settings"):
        replan(other.settings, world.provider, world.states.load())
    missing = World(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="no shift m1 to resume"):
        missing.run(RESUME)


def test_the_start_is_refused_unless_the_records_are_all_on_old(tmp_path):
    world = World(tmp_path)
    world.provider.records[A] = (Record(A, "A", 60, OLD[A] + NEW[A][:1]),)
    with pytest.raises(RecordsChanged) as caught:
        world.plan()
    assert "a.example.test. already sends 33% of its answers to the new targets" in str(
        caught.value)
    world.provider.records[B] = ()
    with pytest.raises(ConfigError, match="it has no A, AAAA or CNAME record"):
        world.plan(take_over=True)
    world.provider.records[B] = original()[B]
    shift = world.plan(take_over=True)
    assert shift.took_over and shift.original[A] == records([Record(A, "A", 60, OLD[A])])
    assert world.run(take_over=True).outcome == "done"


def test_a_batch_landed_in_part_is_finished_on_resume_and_a_loss_is_not(tmp_path):
    world = World(tmp_path, steps=(0, 50, 100))
    sent = world.provider.send

    def crash_at_50(changes):
        world.provider.crash = "partway" if len(world.provider.batches) == 1 else ""
        sent(changes)

    world.provider.send = crash_at_50  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.run()
    world.provider.send = sent  # type: ignore[method-assign]
    world.provider.crash = ""
    report = world.run(RESUME)
    assert report.outcome == "done" and world.provider.records == final()

    lost = World(tmp_path / "lost", steps=(0, 50, 100))
    sent = lost.provider.send

    def crash_and_lose(changes):
        if len(lost.provider.batches) == 1:
            lost.provider.records[B] = ()  # someone deleted B meanwhile
            raise Crash
        sent(changes)

    lost.provider.send = crash_and_lose  # type: ignore[method-assign]
    with pytest.raises(Crash):
        lost.run()
    lost.provider.send = sent  # type: ignore[method-assign]
    with pytest.raises(RecordsChanged) as caught:
        lost.run(RESUME)
    assert caught.value.names == [B]

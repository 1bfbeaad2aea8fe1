"""The stuck alert, driven by a fake clock and small ticks: an alert after ``stuck_after``
without progress, again every further ``stuck_after``, none while the step moves, and the
time counted afresh for a new step."""

from __future__ import annotations

import threading
import time

from migrator.migrate.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Alerts:
    def __init__(self) -> None:
        self.got: list[tuple[str, float]] = []
        self.changed = threading.Condition()

    def __call__(self, step: str, seconds: float) -> None:
        with self.changed:
            self.got.append((step, seconds))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, float]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.got) >= count, timeout)
            return list(self.got)


def _settle(ticks: int = 10, tick: float = 0.005) -> None:
    """Let the watchdog's thread look a few times."""
    time.sleep(ticks * tick)


def test_an_alert_after_stuck_after_and_again_every_further_stuck_after() -> None:
    clock, alerts = Clock(), Alerts()
    with Watchdog(600, alerts, clock=clock, tick=0.005) as dog:
        dog.step("import")
        clock.now += 599
        _settle()
        assert alerts.got == []
        clock.now += 1
        assert alerts.wait_for(1) == [("import", 600)]
        clock.now += 300
        _settle()
        assert len(alerts.got) == 1  # still stuck, but the next alert is due at 1200 s
        clock.now += 300
        assert alerts.wait_for(2) == [("import", 600), ("import", 1200)]


def test_progress_puts_the_alert_off_and_a_new_step_starts_afresh() -> None:
    clock, alerts = Clock(), Alerts()
    with Watchdog(100, alerts, clock=clock, tick=0.005) as dog:
        dog.step("volumes-stage")
        for _ in range(5):
            clock.now += 90
            dog.progress()
            _settle(3)
        assert alerts.got == []
        clock.now += 90
        dog.step("verify")
        clock.now += 50
        _settle()
        assert alerts.got == []
        clock.now += 50
        assert alerts.wait_for(1) == [("verify", 100)]


def test_a_long_silence_alerts_once_then_keeps_its_rhythm() -> None:
    clock, alerts = Clock(), Alerts()
    dog = Watchdog(10, alerts, clock=clock, tick=60)  # the thread never looks: check by hand
    with dog:
        dog.step("soak")
        clock.now += 35
        assert dog.check() is True and dog.check() is False
        clock.now += 5
        assert dog.check() is True
    assert alerts.got == [("soak", 35), ("soak", 40)]


def test_no_step_no_alert_and_a_failing_alert_does_not_end_the_watch() -> None:
    clock, calls = Clock(), []

    def broken(step: str, seconds: float) -> None:
        calls.append(step)
        raise RuntimeError("webhook down")

    dog = Watchdog(10, broken, clock=clock, tick=60)
    clock.now += 100
    assert dog.check() is False  # nothing runs yet
    dog.step("export")
    clock.now += 10
    assert dog.check() is True
    clock.now += 10
    assert dog.check() is True
    assert calls == ["export", "export"]

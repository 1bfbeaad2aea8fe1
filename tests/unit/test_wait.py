"""wait_for / wait_for_all: ready, failed at once, timed out, fetch failures; no real sleeping."""
from __future__ import annotations

import pytest

from migrator.errors import ApiError, ClusterUnreachable
from migrator.kube.wait import FAILED, READY, WAITING, Readiness, wait_for, wait_for_all


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def by_value(value: int) -> Readiness:
    if value < 0:
        return Readiness(FAILED, f"broken ({value})")
    return Readiness(READY) if value >= 3 else Readiness(WAITING, f"at {value}/3")


def test_each_key_ends_ready_failed_or_timed_out_against_one_deadline() -> None:
    clock = Clock()
    values = {"fast": iter([0, 3]), "broken": iter([-1]), "slow": iter([0, 1, 1, 1, 1, 1, 1])}
    fetched: list[str] = []

    def fetch(key: str) -> int:
        fetched.append(key)
        return next(values[key])

    ended = wait_for_all(["fast", "broken", "slow"], fetch, by_value, timeout=5, interval=2,
                         clock=clock, sleep=clock.sleep)
    assert list(ended) == ["fast", "broken", "slow"]
    assert ended["fast"].ready and ended["fast"].value == 3
    assert ended["broken"].readiness == Readiness(FAILED, "broken (-1)")
    assert ended["slow"].readiness == Readiness(WAITING, "at 1/3 after 5s")
    assert ended["slow"].timed_out and not ended["fast"].timed_out
    assert clock.sleeps == [2, 2, 1]  # the last wait only up to the deadline
    assert fetched.count("broken") == 1 and fetched.count("fast") == 2  # settled: not asked again


def test_values_already_read_are_checked_before_any_fetch() -> None:
    clock = Clock()
    ended = wait_for_all(["a"], lambda key: pytest.fail("fetched"), by_value, timeout=10,
                         first={"a": 5}, clock=clock, sleep=clock.sleep)
    assert ended["a"].ready and clock.sleeps == []


def test_a_permanent_fetch_failure_ends_that_wait_a_temporary_one_is_raised() -> None:
    clock = Clock()

    def gone(_key: str) -> int:
        raise ApiError("GET /x: 404 NotFound", status=404)

    ended = wait_for_all(["x"], gone, by_value, timeout=10, clock=clock, sleep=clock.sleep)
    assert ended["x"].readiness == Readiness(FAILED, "GET /x: 404 NotFound")
    assert ended["x"].value is None

    def unreachable(_key: str) -> int:
        raise ClusterUnreachable("new", "https://x", "connection refused")

    with pytest.raises(ClusterUnreachable):
        wait_for_all(["x"], unreachable, by_value, timeout=10, clock=clock, sleep=clock.sleep)


def test_progress_counts_settled_keys_each_round() -> None:
    clock = Clock()
    values = {"a": iter([3]), "b": iter([1, 3])}
    seen: list[tuple[int, int]] = []
    wait_for_all(["a", "b"], lambda k: next(values[k]), by_value, timeout=10, interval=1,
                 on_progress=lambda done, total: seen.append((done, total)), clock=clock,
                 sleep=clock.sleep)
    assert seen == [(1, 2), (2, 2)]


def test_wait_for_one_thing() -> None:
    clock = Clock()
    values = iter([1, 2, 3])
    end = wait_for(lambda: next(values), by_value, timeout=60, interval=10, clock=clock,
                   sleep=clock.sleep)
    assert end.ready and end.value == 3 and clock.sleeps == [10, 10]
    never = wait_for(lambda: 0, by_value, timeout=0, clock=clock, sleep=clock.sleep)
    assert never.timed_out and never.readiness == Readiness(WAITING, "at 0/3 after 0s")

"""The import lock's decision: a live holder refuses, a holder silent too long has died."""
from __future__ import annotations

import json

from migrator.importer.ratelimit import RateLimiter
from migrator.kube.lease import (
    CLOCK_SKEW,
    HOLDER_ANNOTATION,
    describe_holder,
    lease_state,
    micro_time,
    parse_time,
)

NOW = 1_700_000_000.0


def lease(renewed: float | None, holder: str = "laptop/42", duration: int = 30) -> dict:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration}
    if renewed is not None:
        spec["renewTime"] = micro_time(renewed)
    details = {"host": "laptop", "pid": 42, "snapshot": "prod-1", "store": "s3://b"}
    return {"metadata": {"annotations": {HOLDER_ANNOTATION: json.dumps(details)}}, "spec": spec}


def test_micro_time_round_trips() -> None:
    assert parse_time(micro_time(NOW + 0.5)) == NOW + 0.5
    assert parse_time("2024-01-01T00:00:00Z") == 1704067200.0
    assert parse_time("garbage") is None


def test_recent_heartbeat_is_alive_and_says_who() -> None:
    state = lease_state(lease(NOW - 10), NOW)
    assert state.alive and round(state.age) == 10
    assert round(state.expires_in) == 30 + CLOCK_SKEW - 10
    assert "laptop pid 42" in describe_holder(state) and "prod-1" in describe_holder(state)


def test_silent_holder_has_expired() -> None:
    assert not lease_state(lease(NOW - 30 - CLOCK_SKEW - 1), NOW).alive
    assert lease_state(lease(NOW - 30 - CLOCK_SKEW + 1), NOW).alive


def test_lease_without_holder_or_heartbeat_is_free() -> None:
    assert not lease_state(lease(NOW, holder=""), NOW).alive
    assert not lease_state(lease(None), NOW).alive
    assert not lease_state({}, NOW).alive


def test_rate_limiter_spaces_requests_without_real_sleeps() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert round(sum(slept), 6) == 0.4  # 5 requests at 10/s: the first free, then 0.1s each
    RateLimiter(0).acquire()  # no limit: returns at once


def test_a_dead_holder_on_this_machine_is_seen_at_once() -> None:
    import os
    import socket
    import subprocess

    from migrator.kube.lease import holder_died_here

    here = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert holder_died_here({"host": here, "pid": gone.pid})
    assert not holder_died_here({"host": here, "pid": os.getpid()})
    assert not holder_died_here({"host": "elsewhere", "pid": gone.pid})

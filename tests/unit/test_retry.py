"""What is transient, how long we wait, and what is raised when the retries run out.

Every test records the waits instead of sleeping (the ``sleeps`` fixture).
"""
from __future__ import annotations

from collections.abc import Callable

import json
import ssl

import pytest
import urllib3.exceptions as u3

from migrator.errors import ApiError, ClusterUnreachable, MigratorError
from migrator.kube import retry
from tests.unit.conftest import FakeTime, fake_policy

pytestmark = pytest.mark.unit


def refused() -> u3.NewConnectionError:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as cause:
        try:
            raise u3.NewConnectionError(None, "Failed to establish a new connection") from cause
        except u3.NewConnectionError as exc:
            return exc


def api_error(status: int, retry_after: float | None = None) -> ApiError:
    return ApiError(f"GET /x: {status}", status=status, retry_after=retry_after)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
                     True, id="connection-reset"),
        pytest.param(u3.ReadTimeoutError(None, "/x", "Read timed out."), True, id="read-timeout"),
        pytest.param(u3.ConnectTimeoutError("connect timed out"), True, id="connect-timeout"),
        pytest.param(refused(), True, id="refused"),
        pytest.param(u3.MaxRetryError(None, "/x", refused()), True, id="max-retry-refused"),
        pytest.param(u3.MaxRetryError(None, "/x", u3.SSLError("bad cert")), False,
                     id="max-retry-ssl"),
        pytest.param(u3.SSLError("certificate verify failed"), False, id="ssl"),
        pytest.param(ConnectionResetError(104, "reset"), True, id="os-reset"),
        pytest.param(ValueError("bug"), False, id="not-transport"),
        pytest.param(ClusterUnreachable("c", "https://s", "refused"), False, id="already-final"),
        *[pytest.param(api_error(code), True, id=f"http-{code}")
          for code in (429, 500, 502, 503, 504)],
        *[pytest.param(api_error(code), False, id=f"http-{code}")
          for code in (400, 401, 403, 404, 405, 409, 410, 422, 501)],
        # 1.33's answer to an apply with a field its schema lacks: the same every time
        pytest.param(ApiError.from_response(500, json.dumps({
            "kind": "Status", "code": 500, "message": "failed to create typed patch object "
            "(ns/x; batch/v1, Kind=CronJob): errors:\n  .spec.jobTemplate.metadata.clusterName: "
            "field not declared in schema"}), "PATCH", "/apis/batch/v1/x"), False,
            id="http-500-untyped-patch"),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert retry.is_transient(exc) is transient


def failing(errors: list[BaseException], result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """A callable raising ``errors`` one per call, then returning ``result``; and its call log."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(len(calls) + 1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def unreachable(exc: BaseException) -> MigratorError:
    return ClusterUnreachable("ctx", "https://127.0.0.1:1", retry.describe(exc))


def test_two_503_then_success_returns_the_value(sleeps: list[float]) -> None:
    fn, calls = failing([api_error(503), api_error(503)], result="value")
    assert retry.call(fn, on_connection_error=unreachable) == "value"
    assert len(calls) == 3
    # Exponential: the second wait is twice the first (jitter pinned by the fixture).
    assert sleeps == [pytest.approx(0.375), pytest.approx(0.75)]


@pytest.mark.parametrize(("retry_after", "expected"), [(2.0, 2.0), (0.0, 0.0), (1000.0, 30.0)])
def test_429_retry_after_is_honoured_and_capped(
    sleeps: list[float], retry_after: float, expected: float
) -> None:
    fn, _calls = failing([api_error(429, retry_after)])
    assert retry.call(fn, on_connection_error=unreachable) == "ok"
    assert sleeps == [expected]


def test_429_without_retry_after_backs_off_exponentially(sleeps: list[float]) -> None:
    fn, _calls = failing([api_error(429)])
    retry.call(fn, on_connection_error=unreachable)
    assert sleeps == [pytest.approx(0.375)]


def test_backoff_is_capped_per_wait() -> None:
    policy = retry.RetryPolicy(base_delay=1.0, max_delay=4.0, jitter=lambda: 1.0)
    assert [policy.backoff(n, None) for n in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_permanent_error_is_raised_at_once(sleeps: list[float]) -> None:
    fn, calls = failing([api_error(404)])
    with pytest.raises(ApiError) as info:
        retry.call(fn, on_connection_error=unreachable)
    assert info.value.status == 404
    assert calls == [1] and sleeps == []


# With the jitter pinned: 0.375, 0.75, 1.5, 3 and 6 s, then 7.5 s (the 10 s cap, jittered)
# fourteen times, and the last wait only up to the two-minute budget.
BUDGET_SCHEDULE = [0.375, 0.75, 1.5, 3.0, 6.0, *[7.5] * 14, 3.375]


def test_exhausted_http_error_stays_an_api_error(sleeps: list[float]) -> None:
    fn, calls = failing([api_error(503) for _ in range(100)])
    with pytest.raises(ApiError) as info:
        retry.call(fn, on_connection_error=unreachable)
    assert info.value.status == 503
    assert sleeps == pytest.approx(BUDGET_SCHEDULE)
    assert sum(sleeps) == pytest.approx(retry.DEFAULT_BUDGET) and len(calls) == len(sleeps) + 1


def test_exhausted_connection_error_becomes_the_callers_error(sleeps: list[float]) -> None:
    original = refused()
    fn, calls = failing([original] * 100)
    with pytest.raises(ClusterUnreachable) as info:
        retry.call(fn, on_connection_error=unreachable)
    assert info.value.reason == "connection refused"
    assert info.value.__cause__ is original
    assert len(calls) == len(BUDGET_SCHEDULE) + 1


def test_an_outage_shorter_than_the_budget_is_outlasted(sleeps: list[float]) -> None:
    """A control-plane restart: a minute of refused connections, then an answer."""
    fn, calls = failing([refused()] * 12, result="back")
    assert retry.call(fn, on_connection_error=unreachable) == "back"
    assert len(calls) == 13 and 30 < sum(sleeps) < retry.DEFAULT_BUDGET


def test_the_budget_is_settable(fake_time: FakeTime) -> None:
    retry.set_budget(10)
    fn, calls = failing([api_error(503) for _ in range(100)])
    with pytest.raises(ApiError):
        retry.call(fn, on_connection_error=unreachable)
    assert sum(fake_time.sleeps) == pytest.approx(10) and len(calls) == 6


def test_waiting_is_said_once_it_lasts(sleeps: list[float], caplog: pytest.LogCaptureFixture
                                       ) -> None:
    fn, _calls = failing([refused()] * 8)
    with caplog.at_level("WARNING", logger="migrator.kube.retry"):
        retry.call(fn, on_connection_error=unreachable, what="GET /version")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # 5.6 s in (past the first seconds), then at least 10 s apart; quick blips say nothing.
    assert warnings == [
        "GET /version: connection refused; still trying for 114s more (6s so far)",
        "GET /version: connection refused; still trying for 101s more (19s so far)",
    ]


def test_an_attempt_cap_still_applies_when_given(fake_time: FakeTime) -> None:
    policy = fake_policy(fake_time, attempts=3)
    fn, calls = failing([api_error(503) for _ in range(10)])
    with pytest.raises(ApiError):
        retry.call(fn, on_connection_error=unreachable, policy=policy)
    assert len(calls) == 3 and fake_time.sleeps == [0.375, 0.75]


def test_permanent_transport_error_is_converted_without_retrying(sleeps: list[float]) -> None:
    fn, calls = failing([u3.SSLError("certificate verify failed")])
    with pytest.raises(ClusterUnreachable, match="certificate verify failed"):
        retry.call(fn, on_connection_error=unreachable)
    assert calls == [1] and sleeps == []


def test_total_wait_is_capped(fake_time: FakeTime) -> None:
    policy = fake_policy(fake_time, budget=1.0)
    fn, calls = failing([api_error(429, retry_after=0.8) for _ in range(10)])
    with pytest.raises(ApiError):
        retry.call(fn, on_connection_error=unreachable, policy=policy)
    assert fake_time.sleeps == [pytest.approx(0.8), pytest.approx(0.2)]
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (refused(), "connection refused"),
        (u3.MaxRetryError(None, "/x", refused()), "connection refused"),
        (u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset")),
         "connection reset"),
        (u3.ReadTimeoutError(None, "/x", "Read timed out."), "read timed out"),
    ],
)
def test_describe(exc: BaseException, text: str) -> None:
    assert retry.describe(exc) == text


def _ssl_error(reason: BaseException) -> u3.SSLError:
    try:
        raise reason
    except BaseException as cause:  # noqa: BLE001 - building the chain a real failure has
        try:
            raise u3.SSLError(reason) from cause
        except u3.SSLError as exc:
            return exc


@pytest.mark.parametrize(("exc", "transient"), [
    (_ssl_error(ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] unexpected eof")), True),
    (_ssl_error(ssl.SSLError(1, "[SSL] EOF occurred in violation of protocol")), True),
    (_ssl_error(ConnectionResetError(104, "Connection reset by peer")), True),
    (_ssl_error(ssl.SSLCertVerificationError(1, "certificate verify failed")), False),
    (_ssl_error(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")), False),
])
def test_a_tls_stream_cut_short_is_transient_a_bad_certificate_is_not(
    exc: BaseException, transient: bool
) -> None:
    assert retry.is_transient(exc) is transient

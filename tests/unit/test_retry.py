"""What is transient, how long we wait, and what is raised when the retries run out.

Every test records the waits instead of sleeping (the ``sleeps`` fixture).
"""
from __future__ import annotations

from collections.abc import Callable

import pytest
import urllib3.exceptions as u3

from migrator.errors import ApiError, ClusterUnreachable, MigratorError
from migrator.kube import retry

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


def test_exhausted_http_error_stays_an_api_error(sleeps: list[float]) -> None:
    fn, calls = failing([api_error(503) for _ in range(10)])
    with pytest.raises(ApiError) as info:
        retry.call(fn, on_connection_error=unreachable)
    assert info.value.status == 503
    assert len(calls) == retry.DEFAULT_POLICY.attempts
    assert len(sleeps) == retry.DEFAULT_POLICY.attempts - 1


def test_exhausted_connection_error_becomes_the_callers_error(sleeps: list[float]) -> None:
    original = refused()
    fn, calls = failing([original] * 10)
    with pytest.raises(ClusterUnreachable) as info:
        retry.call(fn, on_connection_error=unreachable)
    assert info.value.reason == "connection refused"
    assert info.value.__cause__ is original
    assert len(calls) == retry.DEFAULT_POLICY.attempts


def test_permanent_transport_error_is_converted_without_retrying(sleeps: list[float]) -> None:
    fn, calls = failing([u3.SSLError("certificate verify failed")])
    with pytest.raises(ClusterUnreachable, match="certificate verify failed"):
        retry.call(fn, on_connection_error=unreachable)
    assert calls == [1] and sleeps == []


def test_total_wait_is_capped() -> None:
    recorded: list[float] = []
    policy = retry.RetryPolicy(attempts=10, max_total_wait=1.0, sleep=recorded.append)
    fn, calls = failing([api_error(429, retry_after=0.8) for _ in range(10)])
    with pytest.raises(ApiError):
        retry.call(fn, on_connection_error=unreachable, policy=policy)
    assert recorded == [pytest.approx(0.8), pytest.approx(0.2)]
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

"""The one place that decides what is transient and how long to keep trying.

Transient: the connection broke (refused, reset, half-closed, a TLS stream cut short, a
timeout) or the server said "not now" (429, 500, 502, 503, 504). Everything else, in
particular every other 4xx and a certificate that does not verify, fails at once: retrying a
403 or a 422 only delays the bad news.

Retrying is bounded by **elapsed time**, not by a count of attempts: an API server restart (a
control-plane upgrade during a migration) takes 10 to 60 s, and a run must outlast it. The
budget (:attr:`RetryPolicy.budget`, two minutes unless the user sets ``--retry-for``) covers
the whole time since the first attempt, requests included. Waits grow exponentially with
jitter and are capped per wait; a 429's ``Retry-After`` is honoured (capped too). While it
waits past the first few seconds, the run says so, and why, as a warning. When the budget
runs out the last error is raised as it was classified: an :class:`~migrator.errors.ApiError`
stays one, and a connection failure becomes whatever the caller's ``on_connection_error``
makes of it (``Cluster`` makes a :class:`~migrator.errors.ClusterUnreachable`).

Tests never sleep: replace :data:`DEFAULT_POLICY` (or pass a policy) whose ``sleep`` records
the waits and whose ``clock`` moves only when they sleep.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import tenacity
import urllib3.exceptions

from migrator.errors import ApiError, MigratorError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transport failures worth another try. NewConnectionError covers a refused connection
# (the API server restarting); ProtocolError covers a reset or a half-closed keep-alive socket.
_TRANSIENT_TRANSPORT: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    urllib3.exceptions.ConnectTimeoutError,  # NewConnectionError is a subclass
    ConnectionError,  # ConnectionResetError, ConnectionRefusedError, BrokenPipeError
    TimeoutError,
)
# What a TLS error says when the stream was cut, not refused: the peer went away mid-handshake
# or mid-response (a server restarting), which heals; a certificate problem does not.
_CUT_TLS = ("UNEXPECTED_EOF", "EOF occurred in violation of protocol", "connection reset")
DEFAULT_BUDGET = 120.0
_QUIET_FOR = 3.0  # retries within the first seconds are not worth a warning
_WARN_EVERY = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying a transient failure, and how to wait between attempts.

    ``budget`` is the elapsed time (by ``clock``) after which the last error is raised;
    ``attempts`` optionally caps the attempts too (None: only the budget counts).
    """

    budget: float = DEFAULT_BUDGET
    attempts: int | None = None
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def backoff(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(error, ApiError) and error.status == 429 and error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.max_retry_after))
        exponential = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 32))
        # "Equal jitter": at least half the exponential step, so waits still grow, plus a random
        # share of the other half, so many clients retrying together spread out.
        return exponential / 2 + exponential / 2 * self.jitter()


DEFAULT_POLICY = RetryPolicy()


def set_budget(seconds: float) -> None:
    """Make every request of this process retry transient failures for up to ``seconds``
    (the CLI's ``--retry-for``)."""
    global DEFAULT_POLICY
    DEFAULT_POLICY = replace(DEFAULT_POLICY, budget=max(0.0, seconds))


def is_transport_error(exc: BaseException) -> bool:
    """True for failures below HTTP: no response was received at all."""
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def is_transient(exc: BaseException) -> bool:
    """True if trying the same request again may well succeed."""
    if isinstance(exc, MigratorError):
        # An API error says itself whether it is temporary (errors.TRANSIENT_STATUSES); any
        # other MigratorError is already the final word of a retry loop, or permanent.
        return isinstance(exc, ApiError) and exc.temporary
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        return exc.reason is not None and is_transient(exc.reason)
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return _cut_tls(exc)  # a cut stream heals; a certificate problem does not
    return isinstance(exc, _TRANSIENT_TRANSPORT)


def _cut_tls(exc: BaseException) -> bool:
    """True for a TLS failure that is a stream cut short (EOF, reset), not a refusal."""
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        getattr(exc, "reason", None), ssl.SSLCertVerificationError
    ):
        return False
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
            return True
        if any(marker in str(current) for marker in _CUT_TLS):
            return True
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def describe(exc: BaseException) -> str:
    """A short human reason for a transport failure ("connection refused", "read timed out")."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProtocolError):
        inner = _innermost_os_error(exc)
        if inner is not None and inner.strerror:
            return inner.strerror.lower()
        if isinstance(exc, urllib3.exceptions.NewConnectionError):
            return "connection failed"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _innermost_os_error(exc: BaseException) -> OSError | None:
    """The OSError that started a wrapped transport failure, searching causes and args."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None


def _short_reason(error: BaseException | None) -> str:
    """Why an attempt failed, briefly: the status, or the transport failure described."""
    if isinstance(error, ApiError):
        return f"{error.status} {error.reason}".strip()
    return describe(error) if error is not None else "unknown error"


def call(
    fn: Callable[[], T],
    *,
    on_connection_error: Callable[[BaseException], MigratorError],
    what: str = "request",
    policy: RetryPolicy | None = None,
) -> T:
    """Run ``fn`` until it succeeds, fails for good, or the policy's time budget runs out.

    ``fn`` raises :class:`ApiError` for HTTP errors and raw urllib3/OS exceptions for transport
    failures; transport failures that end the retrying are turned into the error that
    ``on_connection_error`` returns, raised from the original. Requests that are not safe to
    repeat are the caller's business: server-side apply and GET, which are, make up nearly all
    of migrator's traffic.
    """
    active = policy or DEFAULT_POLICY
    started = active.clock()
    warned = [started]

    def elapsed() -> float:
        return active.clock() - started

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        planned = active.backoff(state.attempt_number, error)
        return max(0.0, min(planned, active.budget - elapsed()))

    def stop(state: tenacity.RetryCallState) -> bool:
        if active.attempts is not None and state.attempt_number >= active.attempts:
            return True
        return elapsed() >= active.budget

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        now = active.clock()
        waited = now - started
        if waited >= _QUIET_FOR and (warned[0] == started or now - warned[0] >= _WARN_EVERY):
            warned[0] = now
            log.warning(
                "%s: %s; still trying for %.0fs more (%.0fs so far)",
                what,
                _short_reason(error),
                max(0.0, active.budget - waited),
                waited,
            )
        log.info(
            "%s failed (%s); retrying in %.1fs (attempt %d, %.0fs of %.0fs)",
            what,
            _short_reason(error),
            delay,
            state.attempt_number + 1,
            waited,
            active.budget,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=stop,
        wait=wait,
        sleep=lambda seconds: active.sleep(seconds),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except MigratorError:
        raise
    except Exception as exc:
        if is_transport_error(exc):
            raise on_connection_error(exc) from exc
        raise

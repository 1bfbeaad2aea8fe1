"""Health gates: is the new cluster serving well enough to take the next step?

From the moment a step is written, one **check** runs every ``interval`` seconds; a check
asks every gate:

- :class:`HttpProbe` sends ``requests`` HTTP(S) requests to each of a name's new targets
  (the name as Host header and TLS server name, so the new cluster's ingress routes them as
  it will route real traffic) and fails when, over the last ``window`` seconds, the share of
  failed requests (no connection, a timeout, a status outside ``expect``) exceeds
  ``max_error_rate`` or the ``percentile`` latency exceeds ``max_latency``;
- :class:`CommandGate` runs the user's command (a Prometheus query, a smoke test), which
  must exit 0; it learns the step from ``MIGRATOR_SHIFT_*`` variables.

:meth:`GateRunner.run` counts failed checks: ``threshold`` of them in one step fail the gate
(and the shift rolls back); the step passes once its wait (at least the TTL) is over and at
least ``checks`` checks ran. The rule for errors, as Flagger and Argo Rollouts have it and
:func:`~migrator.errors.is_temporary` decides: a gate that could not measure right now (a
temporary error: its command timed out or exited 75, a target's name did not resolve) is
tried again at the next interval, ``retries`` times in a row at most, after which the check
counts as failed; a gate that cannot work at all (a permanent error) fails at once.
"""

from __future__ import annotations

import http.client
import math
import os
import socket
import ssl
import subprocess
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import GateError, GateUnavailable, MigratorError, is_temporary
from migrator.traffic.records import Route
from migrator.traffic.settings import CommandGate as CommandSettings
from migrator.traffic.settings import Gates
from migrator.traffic.settings import HttpGate as HttpSettings

EX_TEMPFAIL = 75  # sysexits.h: "try again later"
_BODY_LIMIT = 64 * 1024
_LISTED = 3  # distinct failures a check names


@dataclass(frozen=True)
class StepContext:
    """What a gate is told about the step it checks."""

    shift_id: str
    index: int
    percent: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """One gate's answer in one check: ``ok``, what failed, and its measurements."""

    gate: str
    ok: bool
    failures: tuple[str, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)


class Gate(ABC):
    """One health gate; :meth:`check` raises a :class:`~migrator.errors.MigratorError` when
    it cannot tell (temporary or not)."""

    name: str

    @abstractmethod
    def check(self, step: StepContext) -> Verdict:
        """Measure once."""

    def reset(self) -> None:  # noqa: B027 (stateless gates keep nothing)
        """Forget earlier measurements (a new step begins)."""


# --- HTTP probes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One probe: when, to what, and how it went."""

    at: float
    target: str
    ok: bool
    latency: float
    detail: str = ""


Probe = Callable[[HttpSettings, str, str, int], tuple[int, float]]


def http_probe(gate: HttpSettings, host: str, address: str, port: int) -> tuple[int, float]:
    """Send one request to ``address:port`` for ``host``; (status, seconds). Raises
    ``OSError`` (or ``http.client.HTTPException``) when no answer came."""
    started = time.monotonic()
    sock = socket.create_connection((address, port), timeout=gate.timeout)
    try:
        if gate.scheme == "https":
            context = ssl.create_default_context()
            if gate.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host.rstrip("."))
        connection = http.client.HTTPConnection(address, port, timeout=gate.timeout)
        connection.sock = sock
        connection.request(
            "GET", gate.path, headers={"Host": host.rstrip("."), "User-Agent": "migrator-gate"}
        )
        response = connection.getresponse()
        response.read(_BODY_LIMIT)
        return response.status, time.monotonic() - started
    finally:
        sock.close()


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def resolve(hostname: str, port: int) -> list[str]:
    """The addresses a host name target resolves to; a failure to resolve is temporary."""
    try:
        found = socket.getaddrinfo(hostname.rstrip("."), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise GateUnavailable(f"cannot resolve {hostname}: {exc}") from exc
    return sorted({str(info[4][0]) for info in found})


class HttpProbe(Gate):
    """HTTP(S) probes of every name's new targets over a sliding window (module doc)."""

    name = "http"

    def __init__(
        self,
        settings: HttpSettings,
        routes: Sequence[Route],
        *,
        probe: Probe = http_probe,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.routes = list(routes)
        self.probe = probe
        self.clock = clock
        self.samples: deque[Sample] = deque()

    def reset(self) -> None:
        self.samples.clear()

    def _targets(self) -> list[tuple[str, str]]:
        """(name, address) of every new target; host names are resolved each check."""
        port = self.settings.target_port
        found = []
        for route in self.routes:
            addresses = list(route.new.addresses)
            if route.new.hostname:
                addresses += resolve(route.new.hostname, port)
            found += [(route.name, a) for a in addresses]
        return found

    def check(self, step: StepContext) -> Verdict:
        settings, port = self.settings, self.settings.target_port
        for name, address in self._targets():
            for _ in range(settings.requests):
                self.samples.append(self._sample(name, address, port))
        horizon = self.clock() - settings.window
        while self.samples and self.samples[0].at < horizon:
            self.samples.popleft()
        window = list(self.samples)
        failed = [s for s in window if not s.ok]
        error_rate = len(failed) / len(window) if window else 0.0
        latency = percentile([s.latency for s in window if s.ok], settings.percentile)
        failures = list(dict.fromkeys(f"{s.target}: {s.detail}" for s in failed))[:_LISTED]
        if error_rate > settings.max_error_rate:
            failures.insert(
                0,
                f"{len(failed)} of {len(window)} requests failed "
                f"({error_rate:.0%} > {settings.max_error_rate:.0%})",
            )
        if latency > settings.max_latency:
            failures.insert(
                0,
                f"p{settings.percentile:g} latency {latency * 1000:.0f} ms > "
                f"{settings.max_latency * 1000:.0f} ms",
            )
        ok = error_rate <= settings.max_error_rate and latency <= settings.max_latency
        stats = {
            "requests": len(window),
            "failed": len(failed),
            "errorRate": round(error_rate, 4),
            f"p{settings.percentile:g}Ms": round(latency * 1000, 1),
        }
        return Verdict(self.name, ok, tuple(failures) if not ok else (), stats)

    def _sample(self, name: str, address: str, port: int) -> Sample:
        target = f"{name} via {address}:{port}"
        try:
            status, latency = self.probe(self.settings, name, address, port)
        except (OSError, http.client.HTTPException) as exc:
            detail = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            return Sample(self.clock(), target, False, 0.0, detail)
        ok = self.settings.expected(status)
        return Sample(self.clock(), target, ok, latency, "" if ok else f"HTTP {status}")


# --- the user's command -----------------------------------------------------------------


class CommandGate(Gate):
    """The user's command must exit 0 (module doc)."""

    name = "command"

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    def check(self, step: StepContext) -> Verdict:
        env = {
            **os.environ,
            "MIGRATOR_SHIFT_ID": step.shift_id,
            "MIGRATOR_SHIFT_STEP": str(step.index),
            "MIGRATOR_SHIFT_PERCENT": str(step.percent),
            "MIGRATOR_SHIFT_NAMES": " ".join(n.rstrip(".") for n in step.names),
        }
        command: str | list[str] = (
            self.settings.run[0] if self.settings.shell else list(self.settings.run)
        )
        shown = " ".join(self.settings.run)
        try:
            done = subprocess.run(
                command,
                shell=self.settings.shell,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.settings.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GateUnavailable(
                f"gate command timed out after {self.settings.timeout:g}s: {shown}"
            ) from exc
        except OSError as exc:
            raise GateError(f"gate command cannot run: {shown}: {exc.strerror or exc}") from exc
        if done.returncode == 0:
            return Verdict(self.name, True, stats={"exit": 0})
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        detail = f"exit {done.returncode}" + (f": {last[0][:200]}" if last[0] else "")
        if done.returncode == EX_TEMPFAIL:
            raise GateUnavailable(f"gate command could not tell ({detail}): {shown}")
        if done.returncode == 127 and self.settings.shell:
            raise GateError(f"gate command not found ({detail}): {shown}")
        return Verdict(self.name, False, (f"{shown}: {detail}",), {"exit": done.returncode})


# --- the checks of a step ---------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check of a step: every gate's verdict, or the error that stopped it."""

    at: float
    ok: bool
    verdicts: tuple[Verdict, ...] = ()
    error: str = ""
    temporary: bool = False

    @property
    def failures(self) -> list[str]:
        return [f for v in self.verdicts for f in v.failures] + ([self.error] if self.error else [])

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "at": round(self.at, 3),
            "ok": self.ok,
            "gates": {v.gate: {"ok": v.ok, **v.stats} for v in self.verdicts},
        }
        if self.failures:
            doc["failures"] = self.failures
        if self.error:
            doc["temporary"] = self.temporary
        return doc


@dataclass
class Outcome:
    """How a step's gate ended: passed, or failed with the reason; every check it ran."""

    passed: bool
    reason: str = ""
    checks: list[Check] = field(default_factory=list)
    failed_at: float | None = None

    @property
    def failed_checks(self) -> int:
        return sum(not c.ok for c in self.checks if not c.temporary)


class GateRunner:
    """Runs a step's checks (module doc). ``clock`` is wall-clock time (a step's start is
    stored and read back by a resumed run); ``sleep`` is injectable."""

    def __init__(
        self,
        settings: Gates,
        gates: Sequence[Gate],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.gates = list(gates)
        self.clock = clock
        self.sleep = sleep

    def check(self, step: StepContext) -> Check:
        """Ask every gate once; a permanent error ends the check as failed, a temporary one
        as temporary (tried again)."""
        verdicts = []
        for gate in self.gates:
            try:
                verdicts.append(gate.check(step))
            except MigratorError as exc:
                return Check(
                    self.clock(),
                    False,
                    tuple(verdicts),
                    f"{gate.name}: {exc}",
                    temporary=is_temporary(exc),
                )
        return Check(self.clock(), all(v.ok for v in verdicts), tuple(verdicts))

    def run(
        self,
        step: StepContext,
        started: float,
        wait: float,
        *,
        on_check: Callable[[Check, Outcome], None] | None = None,
    ) -> Outcome:
        """Check the step written at ``started`` (wall clock) until it passes (its ``wait``
        over, ``checks`` checks done) or fails (``threshold`` failed checks, or a permanent
        gate error)."""
        for gate in self.gates:
            gate.reset()
        settings = self.settings
        outcome = Outcome(False)
        if not self.gates:
            self._sleep_until(started + wait)
            outcome.passed = True
            return outcome
        next_at = max(self.clock(), started)
        streak = 0  # temporary errors in a row
        while True:
            self._sleep_until(next_at)
            check = self.check(step)
            permanent = bool(check.error) and not check.temporary
            streak = streak + 1 if check.temporary else 0
            if streak > settings.retries:  # could not measure for too long: a failed check
                check = Check(
                    check.at, False, check.verdicts, f"{check.error} ({streak} times in a row)"
                )
                streak = 0
            outcome.checks.append(check)
            if on_check:
                on_check(check, outcome)
            if permanent:
                return self._failed(outcome, check, f"gate error: {check.error}")
            failed = outcome.failed_checks
            if failed >= settings.threshold:
                return self._failed(
                    outcome,
                    check,
                    f"{failed} of {len(outcome.checks)} checks "
                    f"failed; last: {'; '.join(check.failures)}",
                )
            done = len([c for c in outcome.checks if not c.temporary])
            if done >= settings.checks and self.clock() >= started + wait:
                outcome.passed = True
                return outcome
            next_at += settings.interval
            # a check that ran long (timeouts) does not make the next ones bunch up
            next_at = max(next_at, self.clock())

    def _failed(self, outcome: Outcome, check: Check, reason: str) -> Outcome:
        outcome.passed = False
        outcome.reason = reason
        outcome.failed_at = check.at
        return outcome

    def _sleep_until(self, when: float) -> None:
        remaining = when - self.clock()
        if remaining > 0:
            self.sleep(remaining)


def build_gates(
    settings: Gates,
    routes: Sequence[Route],
    *,
    probe: Probe = http_probe,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> GateRunner:
    """The gate runner the settings describe, probing ``routes``' new targets."""
    gates: list[Gate] = []
    if settings.http:
        gates.append(HttpProbe(settings.http, routes, probe=probe, clock=clock))
    if settings.command:
        gates.append(CommandGate(settings.command))
    return GateRunner(settings, gates, clock=clock, sleep=sleep)

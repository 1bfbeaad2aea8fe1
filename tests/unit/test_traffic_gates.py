"""Health gates without servers: HTTP probe windows, the user's command, and the runner's
rule (threshold failed checks roll back, temporary errors are tried again, permanent ones
fail at once). Time is a fake clock: nothing really waits."""
from __future__ import annotations

import sys

import pytest

from migrator.errors import GateError, GateUnavailable
from migrator.traffic.gates import (
    CommandGate,
    Gate,
    GateRunner,
    HttpProbe,
    StepContext,
    Verdict,
    percentile,
)
from migrator.traffic.records import Route, Targets
from migrator.traffic.settings import CommandGate as CommandSettings
from migrator.traffic.settings import Gates, HttpGate

pytestmark = pytest.mark.unit

STEP = StepContext("shift-1", 2, 25, ("app.example.test.",))
ROUTE = Route("app.example.test.", Targets(("10.0.0.1",)), Targets(("10.0.1.1", "10.0.1.2")))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_percentile_nearest_rank():
    assert percentile([], 99) == 0
    assert percentile([0.3, 0.1, 0.2], 50) == 0.2
    assert percentile([float(i) for i in range(1, 101)], 99) == 99
    assert percentile([float(i) for i in range(1, 101)], 100) == 100


def test_http_probe_measures_every_new_target_over_a_sliding_window():
    clock = Clock()
    answers = {"10.0.1.1": (200, 0.010), "10.0.1.2": (200, 0.020)}
    seen: list[tuple[str, str, int]] = []

    def probe(settings, host, address, port):
        seen.append((host, address, port))
        status, latency = answers[address]
        if status == 0:
            raise ConnectionRefusedError(111, "Connection refused")
        return status, latency

    gate = HttpProbe(HttpGate(port=8080, requests=2, window=10, max_error_rate=0.2,
                              max_latency=0.5), [ROUTE], probe=probe, clock=clock)
    verdict = gate.check(STEP)
    assert verdict.ok and verdict.stats["requests"] == 4 and verdict.stats["p99Ms"] == 20
    assert seen[0] == ("app.example.test.", "10.0.1.1", 8080) and len(seen) == 4
    answers["10.0.1.2"] = (503, 0.001)
    clock.now += 1
    verdict = gate.check(STEP)  # 2 of 8 failed: 25 % > 20 %
    assert not verdict.ok and verdict.stats["failed"] == 2
    assert "2 of 8 requests failed" in verdict.failures[0]
    assert any("10.0.1.2:8080: HTTP 503" in f for f in verdict.failures)
    answers["10.0.1.2"] = (0, 0)
    clock.now += 1
    assert "Connection refused" in " ".join(gate.check(STEP).failures)
    answers["10.0.1.2"] = (200, 0.9)  # healthy again, but slow
    clock.now += 20  # the failures left the window
    verdict = gate.check(STEP)
    assert not verdict.ok and verdict.failures[0].startswith("p99 latency 900 ms > 500 ms")
    answers["10.0.1.2"] = (200, 0.02)
    clock.now += 20
    assert gate.check(STEP).ok
    gate.reset()
    assert not gate.samples


def test_http_probe_expects_the_statuses_given():
    gate = HttpProbe(HttpGate(expect=((200, 200), (301, 302))), [ROUTE],
                     probe=lambda *_: (302, 0.01), clock=Clock())
    assert gate.check(STEP).ok
    gate = HttpProbe(HttpGate(expect=((200, 200),)), [ROUTE], probe=lambda *_: (302, 0.01),
                     clock=Clock())
    assert not gate.check(STEP).ok


def command(run: str, timeout: float = 10) -> CommandGate:
    return CommandGate(CommandSettings((run,), True, timeout))


def test_the_users_command_learns_the_step_and_must_exit_0():
    verdict = command('test "$MIGRATOR_SHIFT_PERCENT/$MIGRATOR_SHIFT_STEP/$MIGRATOR_SHIFT_NAMES" '
                      '= "25/2/app.example.test"').check(STEP)
    assert verdict.ok
    verdict = command("echo error rate 5%; exit 3").check(STEP)
    assert not verdict.ok and verdict.failures[0].endswith("exit 3: error rate 5%")
    with pytest.raises(GateUnavailable, match="could not tell"):
        command("exit 75").check(STEP)
    with pytest.raises(GateUnavailable, match="timed out"):
        command("sleep 5", timeout=0.2).check(STEP)
    with pytest.raises(GateError, match="not found") as caught:
        command("no-such-command-here").check(STEP)
    assert not isinstance(caught.value, GateUnavailable)
    argv = CommandGate(CommandSettings(("/no/such/binary",), False, 5))
    with pytest.raises(GateError, match="cannot run"):
        argv.check(STEP)
    ok = CommandGate(CommandSettings((sys.executable, "-c", "pass"), False, 10))
    assert ok.check(STEP).ok


class Scripted(Gate):
    """A gate answering from a list: True/False verdicts, or an exception to raise."""

    name = "scripted"

    def __init__(self, answers: list[object]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def check(self, step: StepContext) -> Verdict:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return Verdict(self.name, bool(answer), () if answer else ("bad",))


def runner(answers: list[object], clock: Clock, **gates: object) -> tuple[GateRunner, Scripted]:
    gate = Scripted(answers)
    settings = Gates(**{"interval": 1.0, "checks": 3, "threshold": 2, "retries": 2, **gates})
    return GateRunner(settings, [gate], clock=clock, sleep=clock.sleep), gate


def test_a_step_passes_after_its_wait_and_its_checks():
    clock = Clock()
    gates, gate = runner([], clock)
    outcome = gates.run(STEP, clock.now, wait=5.0)
    assert outcome.passed and gate.calls == 6  # checks at 0..5 s: the last one after the wait
    assert clock.now == 1005.0
    clock = Clock()
    gates, gate = runner([], clock)
    assert gates.run(STEP, clock.now, wait=0.5).passed and gate.calls == 3


def test_threshold_failed_checks_fail_the_step_when_it_is_reached():
    clock = Clock()
    gates, gate = runner([True, False, True, False, True], clock)
    outcome = gates.run(STEP, clock.now, wait=10.0)
    assert not outcome.passed and gate.calls == 4 and outcome.failed_at == 1003.0
    assert outcome.reason.startswith("2 of 4 checks failed; last: bad")


def test_temporary_gate_errors_are_tried_again_then_count_as_failed():
    clock = Clock()
    gates, gate = runner([GateUnavailable("prometheus is restarting")] * 2, clock)
    outcome = gates.run(STEP, clock.now, wait=0.0)
    assert outcome.passed and gate.calls == 5 and outcome.failed_checks == 0
    clock = Clock()
    gates, gate = runner([GateUnavailable("prometheus is down")] * 6, clock)
    outcome = gates.run(STEP, clock.now, wait=0.0)
    assert not outcome.passed and outcome.failed_checks == 2
    assert "prometheus is down (3 times in a row)" in outcome.reason


def test_a_permanent_gate_error_fails_at_once():
    clock = Clock()
    gates, gate = runner([GateError("gate command not found")], clock, threshold=3, checks=5)
    outcome = gates.run(STEP, clock.now, wait=10.0)
    assert not outcome.passed and gate.calls == 1
    assert outcome.reason == "gate error: scripted: gate command not found"


def test_checks_start_when_the_step_was_written_even_on_resume():
    clock = Clock()
    gates, gate = runner([], clock)
    outcome = gates.run(STEP, clock.now - 4.5, wait=5.0)  # written 4.5 s before a restart
    assert outcome.passed and gate.calls == 3 and clock.now == 1002.0


def _tls_server(tmp_path):
    """An HTTPS server on loopback with a self-signed certificate; it answers with the TLS
    server name and Host header it was sent."""
    import datetime
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    seen: dict[str, str] = {}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    context.sni_callback = lambda _sock, server_name, _ctx: seen.update(sni=server_name or "")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen["host"] = self.headers["Host"]
            seen["path"] = self.path
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def test_https_probes_send_the_name_as_server_name_and_host(tmp_path):
    from migrator.traffic.gates import http_probe

    server, seen = _tls_server(tmp_path)
    port = server.server_address[1]
    try:
        gate = HttpGate(scheme="https", port=port, path="/healthz", insecure=True)
        status, latency = http_probe(gate, "app.example.test.", "127.0.0.1", port)
        assert status == 204 and latency > 0
        assert seen == {"sni": "app.example.test", "host": "app.example.test", "path": "/healthz"}
        with pytest.raises(OSError):  # a self-signed certificate is refused unless insecure
            http_probe(HttpGate(scheme="https", port=port), "app.example.test.", "127.0.0.1", port)
    finally:
        server.shutdown()

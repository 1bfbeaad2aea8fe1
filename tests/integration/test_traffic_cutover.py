"""Cutovers under load: a client resolving the name through the proving ground's BIND on
every request (honouring the TTL) sends 150 requests a second while a shift runs. The old
and new clusters' endpoints are the ``cutover_backends`` fixture (tests/cutover.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from migrator.traffic.providers.rfc2136 import round_robin_counts
from migrator.traffic.records import Record
from tests.conftest import REPO
from tests.cutover import Client, share_new
from tests.integration.traffic_support import (
    bind_records,
    name_in,
    rfc2136_settings,
    run_shift,
    set_records,
)
from tests.waiting import wait_until

TTL = 1  # during the shift
OLD_TTL = 2
STEPS = [0, 10, 25, 50, 100]
INTERVAL, THRESHOLD = 0.25, 2


def shift_doc(dns_zone, tmp_path, name, old, new, **extra):
    return rfc2136_settings(dns_zone, tmp_path, {name: list(new.addresses)}, ttl=TTL,
                            stepWait=2, steps=extra.pop("steps", STEPS), gates={
                                "interval": INTERVAL, "checks": 3, "threshold": THRESHOLD,
                                "retries": 1,
                                "http": {"port": new.port, "window": 1, "timeout": 1}}, **extra)


# Requests a second. Each is a new connection to a real node's NodePort, tracked by
# conntrack through kube-proxy's NAT: without pause the client made ~2,000 a second, went
# through the 28,232 ephemeral ports in ~15 s, and a reused port met its previous
# connection's TIME_WAIT (the server's 60 s, conntrack's 120 s): the SYN went unanswered
# and the request timed out, a failure of the test's client, not of the shift. At this rate
# no port is reused within 120 s across the module's tests.
CLIENT_RATE = 150


def start_client(dns_zone, name, old) -> Client:
    client = Client(name, dns_zone.server, dns_zone.port, old.port, threads=4, rate=CLIENT_RATE)
    client.start()
    wait_until("the client's first answers", lambda: len(client.results) > 20, timeout=10)
    return client


def test_zero_failed_requests_across_a_cutover(dns_zone, tmp_path, cutover_backends):
    old, new = cutover_backends
    name = name_in(dns_zone, "cut")
    set_records(dns_zone, name, OLD_TTL, "A", *old.addresses)
    client = start_client(dns_zone, name, old)
    report, events = run_shift(shift_doc(dns_zone, tmp_path, name, old, new), tmp_path / "store")
    time.sleep(TTL + 0.5)  # answers cached before the TTL was restored expire
    results = client.stop()
    assert report.outcome == "done", report.reason
    failed = [r for r in results if not r.ok]
    assert failed == [], failed[:5]
    assert len(results) > 1000
    written = [(e["time"], e["step"], e["shares"][name]) for e in events if e["event"] == "written"]
    observed = {}
    for (start, label, share), (end, _label, _share) in zip(written, written[1:]):
        observed[label] = (share, share_new(results, start + TTL + 0.1, end))
    for label, (planned, seen) in observed.items():
        assert seen is not None and seen == pytest.approx(planned, abs=0.12), (label, observed)
    # the shares a round-robin set of these addresses can give (3+3: 0, 0, 0, 25, 50, 100 %)
    counts = [round_robin_counts(len(old.addresses), len(new.addresses), p) for p in [0, *STEPS]]
    assert [planned for planned, _seen in observed.values()] == [
        pytest.approx(j / (i + j)) for i, j in counts]
    assert share_new(results, written[-1][0] + TTL + 0.1, time.time()) == 1


def test_a_failing_new_cluster_is_rolled_back_within_a_ttl_and_a_gate_window(
        dns_zone, tmp_path, cutover_backends):
    old, new = cutover_backends
    name = name_in(dns_zone, "fail")
    set_records(dns_zone, name, OLD_TTL, "A", *old.addresses)
    broke: list[float] = []

    def fail_now():
        # the moment it is asked to fail: kube-proxy may follow before the call returns
        broke.append(time.time())
        new.fail()

    # The first step that sends clients to new (25 % with several addresses per cluster; with
    # one each, a round-robin set gives only 0, 50 and 100 %, so 50 %).
    first_on_new = next(p for p in STEPS if round_robin_counts(
        len(old.addresses), len(new.addresses), p)[1])

    def break_new(event):
        # once the clients hold that step's answer (one TTL after it was written)
        if event["event"] == "written" and event["percent"] == first_on_new:
            threading.Timer(TTL + 0.2, fail_now).start()

    client = start_client(dns_zone, name, old)
    report, _events = run_shift(shift_doc(dns_zone, tmp_path, name, old, new), tmp_path / "store",
                                on_event=break_new)
    time.sleep(TTL + 2.0 + new.settle)  # clients on old again, for a while
    results = client.stop()
    assert report.outcome == "rolled-back"
    assert "requests failed" in report.reason  # refused or timed out: the pods are gone
    assert bind_records(dns_zone, name) == (Record(name, "A", OLD_TTL, tuple(old.addresses)),)
    t_fail, restored = broke[0], report.rollback["restoredAt"]
    gate_window = THRESHOLD * INTERVAL
    # a check's own requests, the update, the client's last request in flight, and the
    # backend's own delay in failing (kube-proxy following a Service change)
    slack = 1.0 + new.settle
    assert restored - t_fail <= gate_window + slack
    last_new = max((r.at for r in results if r.address in new.addresses), default=0.0)
    assert last_new > t_fail, "the clients were on the new backend when it failed"
    assert last_new - t_fail <= TTL + gate_window + slack  # all traffic back on old
    failed = [r for r in results if not r.ok]
    assert failed, "the new backend failed: some requests must have seen it"
    # answered after the backend broke, sent before the last cached answer expired
    window = [(round(r.done - t_fail, 3), round(r.at - restored, 3)) for r in failed]
    assert all(t_fail <= r.done and r.at <= restored + TTL + slack for r in failed), window
    elsewhere = [(r.address, r.detail, round(r.at - t_fail, 3)) for r in failed
                 if r.address not in new.addresses]
    assert elsewhere == [], (elsewhere, new.addresses)
    after = [r for r in results if r.at > restored + TTL + slack]
    assert after and all(r.ok and r.served_by == "old" for r in after)


def command(config, store, *extra) -> list[str]:
    return [sys.executable, "-m", "migrator", "shift", "--id", "m1", "--config", str(config),
            "--store", str(store), "-o", "json", *extra]


def write_config(tmp_path, doc):
    config = tmp_path / "shift.yaml"
    config.write_text(yaml.safe_dump({"traffic": doc}))
    return config


def final_records(name, new):
    return (Record(name, "A", OLD_TTL, tuple(new.addresses)),)


def test_pause_and_resume_reach_the_end_of_an_uninterrupted_shift(dns_zone, tmp_path,
                                                                 cutover_backends):
    old, new = cutover_backends
    name = name_in(dns_zone, "pause")
    set_records(dns_zone, name, OLD_TTL, "A", *old.addresses)
    config = write_config(tmp_path, shift_doc(dns_zone, tmp_path, name, old, new))
    store = tmp_path / "store"
    client = start_client(dns_zone, name, old)
    paused = subprocess.run(command(config, store, "--approve-before", "50"), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert paused.returncode == 10, paused.stderr
    assert "paused before 50 % to new" in paused.stderr and "--resume" in paused.stderr
    i, j = round_robin_counts(len(old.addresses), len(new.addresses), 25)
    at_25 = (Record(name, "A", TTL, tuple(sorted(old.addresses[:i] + new.addresses[:j]))),)
    assert bind_records(dns_zone, name) == at_25
    resumed = subprocess.run(command(config, store, "--approve-before", "50", "--resume"),
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert "approved" in [e["event"] for e in events]
    assert events[-1]["report"]["outcome"] == "done"
    time.sleep(TTL + 0.5)
    results = client.stop()
    assert bind_records(dns_zone, name) == final_records(name, new)
    assert [r for r in results if not r.ok] == []


def test_a_shift_killed_mid_step_resumes_to_the_same_end(dns_zone, tmp_path, cutover_backends):
    old, new = cutover_backends
    name = name_in(dns_zone, "kill")
    set_records(dns_zone, name, OLD_TTL, "A", *old.addresses)
    config = write_config(tmp_path, shift_doc(dns_zone, tmp_path, name, old, new))
    store = tmp_path / "store"
    client = start_client(dns_zone, name, old)
    kills = [("written", 25), ("write", 100)]  # during a gate; around a batch
    for event_name, percent in kills:
        args = command(config, store, *(["--resume"] if (store / "m1").exists() else []))
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == event_name and event["percent"] == percent:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        state = json.loads((store / "m1" / "traffic" / "state.json").read_text())
        assert state["phase"] in ("written", "writing")
    resumed = subprocess.run(command(config, store, "--resume"), cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    time.sleep(TTL + 0.5)
    results = client.stop()
    assert bind_records(dns_zone, name) == final_records(name, new)
    state = json.loads((store / "m1" / "traffic" / "state.json").read_text())
    assert state["phase"] == "done" and state["written"][name] == [
        {"name": name, "type": "A", "ttl": OLD_TTL, "values": list(new.addresses)}]
    assert [r for r in results if not r.ok] == []

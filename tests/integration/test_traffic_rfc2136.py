"""Shifting records on the proving ground's BIND over RFC2136 with TSIG: each step's records,
an exact rollback, a wrong key, and changes someone else makes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from migrator.errors import DnsAuthError, RecordsChanged
from migrator.traffic import open_provider, parse, plan, survey
from migrator.traffic.records import Change, Record, records
from tests.conftest import REPO
from tests.integration.traffic_support import (
    bind_records,
    key_file,
    name_in,
    rfc2136_settings,
    run_shift,
    set_records,
    update,
)

OLD = ["127.0.30.1", "127.0.30.2", "127.0.30.3"]
NEW = ["127.0.31.1", "127.0.31.2", "127.0.31.3"]


def test_every_step_writes_the_records_planned(dns_zone, tmp_path):
    name, other = name_in(dns_zone, "web"), name_in(dns_zone, "api")
    set_records(dns_zone, name, 3, "A", *OLD)
    set_records(dns_zone, other, 3, "CNAME", "old-lb.example.net.")
    doc = rfc2136_settings(dns_zone, tmp_path, {name: NEW, other: ["new-lb.example.net"]},
                           steps=[0, 25, 50, 60, 100])
    settings = parse(doc)
    with open_provider(settings.provider) as provider:
        expected = survey(settings, provider).moves
    seen = {}

    def look(event):
        if event["event"] == "written":
            seen[event["move"]] = {n: bind_records(dns_zone, n) for n in (name, other)}

    report, events = run_shift(doc, tmp_path / "store", on_event=look)
    assert report.outcome == "done", report.reason
    assert seen == {m.index: m.records for m in expected}
    web = {m.percent: seen[m.index][name] for m in expected if m.kind == "step"}
    assert web[0] == (Record(name, "A", 1, tuple(OLD)),)
    assert web[25] == (Record(name, "A", 1, tuple(OLD + NEW[:1])),)  # 1 of 4: 25 %
    assert web[50] == (Record(name, "A", 1, tuple(OLD + NEW)),)
    assert web[60] == (Record(name, "A", 1, tuple(OLD[:2] + NEW)),)  # 3 of 5: 60 %
    assert web[100] == (Record(name, "A", 1, tuple(NEW)),)
    api = {m.percent: seen[m.index][other] for m in expected if m.kind == "step"}
    assert api[50] == (Record(other, "CNAME", 1, ("old-lb.example.net.",)),)
    assert api[60] == (Record(other, "CNAME", 1, ("new-lb.example.net.",)),)  # cut over
    assert bind_records(dns_zone, name) == (Record(name, "A", 3, tuple(NEW)),)  # TTL back
    assert bind_records(dns_zone, other) == (Record(other, "CNAME", 3, ("new-lb.example.net.",)),)
    written = [e["time"] for e in events if e["event"] == "written"]
    assert written[1] - written[0] >= 3  # the old TTL (3 s) was waited out before step 1


def test_a_failed_gate_restores_the_original_record_set_exactly(dns_zone, tmp_path):
    name = name_in(dns_zone, "shop")
    set_records(dns_zone, name, 2, "A", *OLD[:2])
    set_records(dns_zone, name, 3, "AAAA", "fd00::1")
    original = bind_records(dns_zone, name)
    doc = rfc2136_settings(dns_zone, tmp_path, {name: NEW[:2] + ["fd00::2"]},
                           gates={**rfc2136_settings(dns_zone, tmp_path, {})["gates"],
                                  "command": 'test "$MIGRATOR_SHIFT_PERCENT" -lt 50'})
    report, events = run_shift(doc, tmp_path / "store")
    assert report.outcome == "rolled-back"
    assert "exit 1" in report.reason and "test \"$MIGRATOR_SHIFT_PERCENT\" -lt 50" in report.reason
    assert bind_records(dns_zone, name) == original
    assert original == records([Record(name, "A", 2, tuple(OLD[:2])),
                                Record(name, "AAAA", 3, ("fd00::1",))])
    assert [e["percent"] for e in events if e["event"] == "written"][-1] == 50


def test_a_wrong_tsig_key_says_so_and_changes_nothing(dns_zone, tmp_path):
    name = name_in(dns_zone, "key")
    set_records(dns_zone, name, 5, "A", OLD[0])
    wrong = "c29tZSBvdGhlciBzZWNyZXQgdGhhdCBpcyBub3QgdGhlIGtleQ=="
    doc = rfc2136_settings(dns_zone, tmp_path, {name: NEW[:1]},
                           key=key_file(dns_zone, tmp_path, secret=wrong))
    settings = parse(doc)
    with open_provider(settings.provider) as provider, pytest.raises(DnsAuthError) as caught:
        survey(settings, provider)
    message = f"{caught.value} {caught.value.hint}"
    assert "BADSIG" in message and "migrator-key" in message and "secret" in message
    assert wrong not in message and dns_zone.tsig_secret not in message
    config = tmp_path / "shift.yaml"
    import yaml

    config.write_text(yaml.safe_dump({"traffic": doc}))
    store = tmp_path / "store"
    done = subprocess.run([sys.executable, "-m", "migrator", "shift", "--id", "m1", "--config",
                           str(config), "--store", str(store)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 12, done.stderr
    assert "BADSIG" in done.stderr and wrong not in done.stderr + done.stdout
    assert bind_records(dns_zone, name) == (Record(name, "A", 5, (OLD[0],)),)
    assert not (store / "m1" / "traffic" / "state.json").exists()


def test_a_change_between_steps_is_detected_and_left_alone(dns_zone, tmp_path):
    name = name_in(dns_zone, "race")
    set_records(dns_zone, name, 2, "A", *OLD[:1])
    theirs = "192.0.2.77"

    def meddle(event):
        if event["event"] == "written" and event["percent"] == 25:
            set_records(dns_zone, name, 2, "A", theirs)

    doc = rfc2136_settings(dns_zone, tmp_path, {name: NEW[:1]}, steps=[0, 25, 50, 100])
    with pytest.raises(RecordsChanged) as caught:
        run_shift(doc, tmp_path / "store", on_event=meddle)
    assert caught.value.names == [name]
    assert bind_records(dns_zone, name) == (Record(name, "A", 2, (theirs,)),)


def test_the_servers_prerequisites_refuse_a_stale_batch(dns_zone, tmp_path):
    name = name_in(dns_zone, "guard")
    set_records(dns_zone, name, 5, "A", OLD[0])
    settings = parse(rfc2136_settings(dns_zone, tmp_path, {name: NEW[:1]}))
    with open_provider(settings.provider) as provider:
        provider.check()
        read = provider.read([name])[name]
        update(dns_zone, lambda m: m.add(name, 5, "AAAA", "fd00::9"))  # in between
        after = (Record(name, "A", 5, (NEW[0],)),)
        with pytest.raises(RecordsChanged, match="prerequisites failed: YXRRSET"):
            provider.write([Change(name, read, after)])
        found = bind_records(dns_zone, name)
        assert found == records([Record(name, "A", 5, (OLD[0],)), Record(name, "AAAA", 5, ("fd00::9",))])
        # and the plan of a shift from there is exact about what it sends
        routes = survey(settings, provider).routes
        assert plan(settings, provider, {name: found}, routes).moves[-1].records[name] == records(
            [Record(name, "A", 5, (NEW[0],))])

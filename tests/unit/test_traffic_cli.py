"""migrator shift's command line: flags laid over a settings file, and the live view."""
from __future__ import annotations

import io

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from migrator.cli import cli
from migrator.cli.shift import _settings_doc
from migrator.cli.shift_view import ShiftView
from migrator.traffic import parse, plan
from migrator.traffic.providers.rfc2136 import Rfc2136Provider
from migrator.traffic.records import Record, Route, Targets

pytestmark = pytest.mark.unit

FLAGS = {
    "provider": None, "zone": None, "dns_server": None, "tsig_key_file": None,
    "old_target": (), "new_target": (), "new_from": None, "steps": None, "approve_before": (),
    "ttl": None, "step_wait": None, "probe_path": None, "probe_port": None,
    "probe_scheme": None, "no_probe": False, "gate_command": None, "gate_interval": None,
    "gate_checks": None, "gate_threshold": None,
}


def flags(**given):
    return {**FLAGS, **given}


def test_flags_alone_make_a_whole_shift(tmp_path):
    key = tmp_path / "key"
    key.write_text("c2VjcmV0")
    doc = _settings_doc(None, ("app.example.test",), flags(
        provider="rfc2136", zone="example.test", dns_server="10.0.0.53:5353", tsig_key_file=key,
        new_target=("10.1.0.1", "10.1.0.2"), steps="0,20,100", approve_before=(20,), ttl=30,
        step_wait=90.0, probe_path="/healthz", probe_port=8080, gate_command="./smoke.sh",
        gate_interval=5.0, gate_checks=4, gate_threshold=2))
    s = parse(doc)
    assert s.provider.rfc2136.server == "10.0.0.53" and s.provider.rfc2136.port == 5353
    assert s.provider.rfc2136.tsig.secret_file == str(key)
    assert s.names[0].new.targets == Targets(("10.1.0.1", "10.1.0.2"))
    assert [(x.percent, x.approve) for x in s.steps] == [(0, False), (20, True), (100, False)]
    assert (s.ttl, s.step_wait) == (30, 90)
    assert s.gates.http.path == "/healthz" and s.gates.http.port == 8080
    assert s.gates.command.run == ("./smoke.sh",) and s.gates.command.shell
    assert (s.gates.interval, s.gates.checks, s.gates.threshold) == (5, 4, 2)


def test_flags_override_the_settings_file(tmp_path):
    config = tmp_path / "shift.yaml"
    config.write_text(
        "traffic:\n"
        "  provider: {kind: route53, route53: {hostedZoneId: Z1, region: eu-west-1}}\n"
        "  names: [{name: a.example.test, new: [10.1.0.1]}]\n"
        "  ttl: 60\n"
        "  gates: {http: {path: /ready, port: 8443, scheme: https}}\n")
    s = parse(_settings_doc(config, (), flags(zone="Z2", ttl=5, no_probe=True)))
    assert s.provider.route53.hosted_zone_id == "Z2" and s.provider.route53.region == "eu-west-1"
    assert s.ttl == 5 and s.gates.http is None
    s = parse(_settings_doc(config, ("b.example.test",), flags(new_from="service/shop/web")))
    assert [n.name for n in s.names] == ["b.example.test."]
    assert str(s.names[0].new.ref) == "service/shop/web"


def test_targets_without_names_and_one_mode_at_a_time_are_refused():
    runner = CliRunner()
    result = runner.invoke(cli, ["shift", "--id", "m1", "--provider", "rfc2136",
                                 "--new-target", "10.1.0.1"])
    assert result.exit_code == 2 and "apply to the NAMEs given" in result.output
    result = runner.invoke(cli, ["shift", "a.example.test", "--id", "m1", "--resume", "--abort"])
    assert result.exit_code == 2 and "at most one of" in result.output
    result = runner.invoke(cli, ["shift", "a.example.test", "--id", "m1", "--provider", "rfc2136",
                                 "--dns-server", "127.0.0.1", "--zone", "example.test",
                                 "--new-target", "10.1.0.1", "--steps", "0,50,40"])
    assert result.exit_code == 2 and "traffic.steps[2]" in result.output


def a_plan():
    settings = parse({"provider": {"kind": "rfc2136", "rfc2136": {"server": "127.0.0.1",
                                                                   "zone": "example.test"}},
                      "names": [{"name": "a.example.test", "new": ["10.1.0.1"]}],
                      "steps": [0, 50, 100]})
    provider = Rfc2136Provider(settings.provider)
    name = "a.example.test."
    route = Route(name, Targets(("10.0.0.1",)), Targets(("10.1.0.1",)))
    return plan(settings, provider, {name: (Record(name, "A", 60, ("10.0.0.1",)),)},
                {name: route})


def test_the_view_prints_a_line_per_event_off_a_terminal(capsys):
    view = ShiftView(Console(file=io.StringIO()), a_plan())
    with view:
        view.event({"event": "written", "move": 2, "step": "50 % to new", "until": 0})
        view.event({"event": "check", "move": 2, "ok": False, "failed": 1, "done": 2,
                    "gates": {"http": {"ok": False, "requests": 6, "failed": 3}},
                    "failures": ["3 of 6 requests failed"]})
        view.event({"event": "rollback", "move": 2, "reason": "2 of 2 checks failed"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("written 50 % to new")
    assert out[1].endswith("check 2: FAILED (1 failed of 2) http requests 6, failed 3: "
                           "3 of 6 requests failed")
    assert out[2].endswith("ROLLING BACK: 2 of 2 checks failed")


def test_the_live_view_shows_moves_shares_and_the_next_step():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    view = ShiftView(console, a_plan())
    with view:
        view.event({"event": "written", "move": 2, "step": "50 % to new", "until": 9e12})
        view.event({"event": "check", "move": 2, "ok": True, "failed": 0, "done": 1,
                    "gates": {"http": {"ok": True, "requests": 3, "failed": 0}}})
    console.print(view)
    text = click.unstyle(buffer.getvalue())
    assert "50 % to new" in text and "50%" in text and "checking" in text
    assert "last check: ok (0 failed of 1)" in text and "next in" in text

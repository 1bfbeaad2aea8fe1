"""A shift's settings: defaults, and every wrong field named by its path."""
from __future__ import annotations

import pytest

from migrator.errors import ShiftSettingsInvalid
from migrator.traffic.records import Targets
from migrator.traffic.settings import ObjectRef, parse

pytestmark = pytest.mark.unit

RFC2136 = {"kind": "rfc2136", "rfc2136": {"server": "127.0.0.1:5353", "zone": "example.test"}}


def settings(**overrides):
    doc = {"provider": RFC2136, "names": [{"name": "app.example.test", "new": ["10.0.0.2"]}]}
    doc.update(overrides)
    return doc


def invalid(doc) -> ShiftSettingsInvalid:
    with pytest.raises(ShiftSettingsInvalid) as caught:
        parse(doc)
    return caught.value


def test_defaults_are_safe_for_real_use():
    s = parse(settings())
    assert [step.percent for step in s.steps] == [0, 10, 25, 50, 100]
    assert s.ttl == 60 and s.step_wait == 120
    assert s.gates.http is not None and s.gates.http.path == "/"
    assert (s.gates.interval, s.gates.checks, s.gates.threshold) == (10, 6, 3)
    assert s.provider.rfc2136.server == "127.0.0.1" and s.provider.rfc2136.port == 5353
    assert s.provider.rfc2136.zone == "example.test."
    assert s.names[0].name == "app.example.test."
    assert s.names[0].new.targets == Targets(("10.0.0.2",))
    assert not s.names[0].old.given


def test_durations_go_down_to_fractions_of_a_second():
    s = parse(settings(ttl=1, stepWait=0.5,
                       gates={"interval": 0.1, "checks": 2, "threshold": 1,
                              "http": {"window": 0.5, "timeout": 0.2}}))
    assert s.step_seconds == 1 and s.gates.interval == 0.1 and s.gates.http.window == 0.5


@pytest.mark.parametrize(("steps", "path", "words"), [
    ([0, 25, 10, 100], "traffic.steps[2]", "must increase"),
    ([0, 50, 50, 100], "traffic.steps[2]", "must increase"),
    ([0, 10, 50], "traffic.steps[2]", "ends with 100"),
    ([0, 150], "traffic.steps[1]", "must be between 0 and 100 (got 150)"),
    ([-5, 100], "traffic.steps[0]", "must be between 0 and 100 (got -5)"),
    ([0, "x", 100], "traffic.steps[1]", "expected a number"),
    ([], "traffic.steps", "ending at 100"),
    ([0, {"weight": 50, "aprove": True}, 100], "traffic.steps[1].aprove", "unknown"),
])
def test_steps_must_increase_and_end_at_100(steps, path, words):
    error = invalid(settings(steps=steps))
    assert error.field == path
    assert words in error.problem


def test_steps_from_the_command_line_and_approvals():
    s = parse(settings(steps="0, 30,100"))
    assert [(x.percent, x.approve) for x in s.steps] == [(0, False), (30, False), (100, False)]
    s = parse(settings(steps=[0, {"weight": 50, "approve": True}, 100]))
    assert [(x.percent, x.approve) for x in s.steps] == [(0, False), (50, True), (100, False)]


@pytest.mark.parametrize(("overrides", "path"), [
    ({"ttls": 5}, "traffic.ttls"),
    ({"ttl": 0}, "traffic.ttl"),
    ({"gates": {"threshold": 4, "checks": 3}}, "traffic.gates.threshold"),
    ({"gates": {"http": {"latency": {"max": "fast"}}}}, "traffic.gates.http.latency.max"),
    ({"gates": {"http": {"scheme": "ftp"}}}, "traffic.gates.http.scheme"),
    ({"gates": {"http": {"expectStatus": ["200-2x"]}}}, "traffic.gates.http.expectStatus[0]"),
    ({"gates": {"command": {"run": ""}}}, "traffic.gates.command.run"),
    ({"names": []}, "traffic.names"),
    ({"names": [{"name": "app.other.test", "new": ["10.0.0.2"]}]}, "traffic.names[0].name"),
    ({"names": [{"name": "app.example.test"}]}, "traffic.names[0].new"),
    ({"names": [{"name": "a b.example.test", "new": ["10.0.0.2"]}]}, "traffic.names[0].name"),
    ({"names": [{"name": "app.example.test", "new": ["10.0.0.2", "lb.example.test"]}]},
     "traffic.names[0].new"),
    ({"names": [{"name": "app.example.test", "new": {"from": "pod/ns/x"}}]},
     "traffic.names[0].new.from"),
    ({"provider": {"kind": "bind"}}, "traffic.provider.kind"),
    ({"provider": {**RFC2136, "route53": {"hostedZoneId": "Z1"}}}, "traffic.provider.route53"),
    ({"provider": {"kind": "rfc2136", "rfc2136": {"server": "h"}}}, "traffic.provider.rfc2136.zone"),
    ({"provider": {"kind": "route53"}}, "traffic.provider.route53.hostedZoneId"),
    ({"provider": {**RFC2136, "setIdentifiers": {"old": "x", "new": "x"}}},
     "traffic.provider.setIdentifiers.new"),
    ({"provider": {"kind": "external-dns", "externalDns": {"old": ["service/a/b"]}}},
     "traffic.provider.externalDns.new"),
])
def test_a_wrong_field_is_named_by_its_path(overrides, path):
    assert invalid(settings(**overrides)).field == path


def test_targets_from_a_cluster_object_and_host_names():
    s = parse(settings(names=[
        {"name": "a.example.test", "new": {"from": "service/shop/web"},
         "old": {"hostname": "lb-old.example.net", "aliasHostedZoneId": "Z35"}},
        {"name": "b.example.test", "new": {"from": "ingress/shop/web"}, "old": "10.0.0.1"},
    ]))
    a, b = s.names
    assert a.new.ref == ObjectRef("service", "shop", "web")
    assert a.old.targets == Targets(hostname="lb-old.example.net.", alias_zone="Z35")
    assert b.new.ref == ObjectRef("ingress", "shop", "web")
    assert b.old.targets == Targets(("10.0.0.1",))


def test_the_fingerprint_holds_what_a_resumed_shift_must_keep_and_no_secret(tmp_path):
    key = tmp_path / "key"
    key.write_text("c2VjcmV0")
    s = parse(settings(provider={**RFC2136, "rfc2136": {**RFC2136["rfc2136"],
                                                         "tsig": {"secretFile": str(key)}}}))
    assert s.fingerprint()["steps"] == [0, 10, 25, 50, 100]
    assert "c2VjcmV0" not in repr(s.to_dict()) and "c2VjcmV0" not in repr(s)
    assert parse(settings(ttl=5)).fingerprint() == parse(settings()).fingerprint()
    assert parse(settings(steps=[0, 100])).fingerprint() != parse(settings()).fingerprint()

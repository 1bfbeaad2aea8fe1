"""Shifting Route53 weighted records, on moto in server mode (boto3 over HTTP, as with AWS):
the weights of every step, an exact rollback, the batch checks moto does not make, someone
else's change, and external-dns's TXT registry."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrator.errors import BatchInvalid, ExternalDnsOwned, RecordsChanged
from migrator.traffic import open_provider, parse, survey
from migrator.traffic.providers.route53 import from_aws
from migrator.traffic.records import Alias, Change, Record, records
from tests.integration.traffic_support import (
    FAST_GATES,
    hosted_zone,
    moto_route53,
    route53_client,
    run_shift,
)

ZONE = "shop.test."
NAME = "www.shop.test."
PLAIN = {"Name": NAME, "Type": "A", "TTL": 2, "ResourceRecords": [{"Value": "10.0.0.1"}]}
ALIAS = {"hostname": "new-lb.elb.example", "aliasHostedZoneId": "Z35SXDOTRQ7X7K"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_route53() as url:
        yield url


@pytest.fixture
def zone(moto_endpoint, monkeypatch):
    """(client, id) of a fresh hosted zone; AWS credentials for moto in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = route53_client(moto_endpoint)
    return client, hosted_zone(client, ZONE)


def settings_doc(endpoint: str, zone_id: str, new, **extra):
    doc = {
        "provider": {"kind": "route53", "route53": {
            "hostedZoneId": zone_id, "endpointUrl": endpoint, "syncInterval": 0.05}},
        "names": [{"name": NAME, "new": new}],
        "ttl": 1, "stepWait": 0.3, "steps": [0, 10, 50, 100],
        "gates": {**FAST_GATES, "http": False},
    }
    doc.update(extra)
    return doc


def create(client, zone_id: str, *sets: dict) -> None:
    """Write record sets as someone else would. (UPSERT: moto refuses a later CREATE of a
    set equal to one its journal holds as CREATEd, even once deleted in the same batch, which
    Route53 allows: the rollback's "DELETE weighted sets, CREATE the plain one" batch.)"""
    client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": s} for s in sets]})


def sets_of(client, zone_id: str, name: str = NAME) -> tuple[Record, ...]:
    found = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return records(from_aws(s) for s in found if s["Name"] == name)


def test_weights_follow_the_steps_then_the_ttl_is_restored(zone, moto_endpoint, tmp_path):
    client, zone_id = zone
    create(client, zone_id, PLAIN)
    seen = []

    def look(event):
        if event["event"] == "written":
            seen.append((event["step"], {(r.set_id, r.weight, r.ttl, r.targets())
                                         for r in sets_of(client, zone_id)}))

    report, _ = run_shift(settings_doc(moto_endpoint, zone_id, ALIAS), tmp_path, on_event=look)
    assert report.outcome == "done", report.reason
    old, new = ("10.0.0.1",), ("new-lb.elb.example.",)
    assert seen == [
        ("prepare (shift TTL, all on old)", {("old", 100, 1, old), ("new", 0, None, new)}),
        ("0 % to new", {("old", 100, 1, old), ("new", 0, None, new)}),
        ("10 % to new", {("old", 90, 1, old), ("new", 10, None, new)}),
        ("50 % to new", {("old", 50, 1, old), ("new", 50, None, new)}),
        ("100 % to new", {("old", 0, 1, old), ("new", 100, None, new)}),
        ("finish (TTL restored)", {("old", 0, 2, old), ("new", 100, None, new)}),
    ]
    alias = next(r for r in sets_of(client, zone_id) if r.set_id == "new")
    assert alias.alias == Alias("Z35SXDOTRQ7X7K", "new-lb.elb.example.")


def test_a_failed_gate_restores_the_plain_record_exactly(zone, moto_endpoint, tmp_path):
    client, zone_id = zone
    create(client, zone_id, PLAIN, {**PLAIN, "Type": "AAAA",
                                    "ResourceRecords": [{"Value": "fd00::1"}]})
    before = sets_of(client, zone_id)
    gates = {**FAST_GATES, "http": False, "command": 'test "$MIGRATOR_SHIFT_PERCENT" -ne 10'}
    doc = settings_doc(moto_endpoint, zone_id, ["10.1.0.1", "fd00::2"], gates=gates)
    report, events = run_shift(doc, tmp_path)
    assert report.outcome == "rolled-back"
    assert sets_of(client, zone_id) == before
    assert [e["event"] for e in events][-2:] == ["rollback", "rolled-back"]


def test_batches_are_checked_because_moto_accepts_what_route53_refuses(zone, moto_endpoint,
                                                                      tmp_path):
    client, zone_id = zone
    weighted = [{**PLAIN, "SetIdentifier": s, "Weight": 0} for s in ("old", "new")]
    weighted[1]["TTL"] = 5
    # moto takes a batch Route53 would refuse twice over (every weight 0, two TTLs) ...
    answer = client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": s} for s in weighted]})
    assert answer["ChangeInfo"]["Status"] == "INSYNC"
    settings = parse(settings_doc(moto_endpoint, zone_id, ["10.1.0.1"]))
    with open_provider(settings.provider) as provider:
        current = provider.read([NAME])[NAME]
        fixed = records(Record(NAME, "A", 5, ("10.0.0.1",), s, w) for s, w in
                        (("old", 0), ("new", 0)))
        # ... migrator does not send one
        with pytest.raises(BatchInvalid) as caught:
            provider.write([Change(NAME, current, fixed)])
        assert caught.value.rule == "never every weight 0"
        assert sets_of(client, zone_id) == current
        ok = records(Record(NAME, "A", 5, ("10.0.0.1",), s, w) for s, w in (("old", 1), ("new", 0)))
        provider.write([Change(NAME, current, ok)])
        assert sets_of(client, zone_id) == ok


def test_someone_elses_change_stops_the_shift(zone, moto_endpoint, tmp_path):
    client, zone_id = zone
    create(client, zone_id, PLAIN)

    def meddle(event):
        if event["event"] == "written" and event["percent"] == 10:
            client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": NAME, "Type": "A", "TTL": 1, "SetIdentifier": "new", "Weight": 77,
                    "ResourceRecords": [{"Value": "10.1.0.1"}]}}]})

    with pytest.raises(RecordsChanged):
        run_shift(settings_doc(moto_endpoint, zone_id, ["10.1.0.1"]), tmp_path, on_event=meddle)
    weights = {r.set_id: r.weight for r in sets_of(client, zone_id)}
    assert weights == {"old": 90, "new": 77}


def test_records_external_dns_owns_are_refused(zone, moto_endpoint, tmp_path):
    client, zone_id = zone
    create(client, zone_id, PLAIN, {
        "Name": "a-www.shop.test.", "Type": "TXT", "TTL": 300, "ResourceRecords": [
            {"Value": '"heritage=external-dns,external-dns/owner=blue,'
                      'external-dns/resource=ingress/shop/www"'}]})
    settings = parse(settings_doc(moto_endpoint, zone_id, ["10.1.0.1"]))
    with open_provider(settings.provider) as provider, pytest.raises(ExternalDnsOwned) as caught:
        survey(settings, provider)
    assert "owner 'blue', from ingress/shop/www; type-prefixed TXT record a-www.shop.test." in str(
        caught.value)
    assert "provider external-dns" in caught.value.hint
    assert sets_of(client, zone_id) == (from_aws(PLAIN),)

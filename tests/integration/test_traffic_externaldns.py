"""external-dns: its ownership read from TXT records in both formats (BIND), a shift through
its annotations on the two clusters' Services (Route53 on moto, written by a stand-in for
external-dns), and targets read from load balancer status."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from migrator.errors import ExternalDnsOwned
from migrator.traffic import open_provider, parse, survey
from migrator.traffic.endpoints import targets_from
from migrator.traffic.providers.externaldns import HOSTNAME, SET_ID, TTL, WEIGHT
from migrator.traffic.providers.route53 import from_aws, to_aws
from migrator.traffic.records import Record, Targets, records
from migrator.traffic.settings import ObjectRef
from tests.integration.traffic_support import (
    FAST_GATES,
    hosted_zone,
    moto_route53,
    name_in,
    rfc2136_settings,
    route53_client,
    run_shift,
    set_records,
    update,
)

DEFAULT_TTL = 2  # the stand-in's (external-dns's own is 300)
REGISTRY = '"heritage=external-dns,external-dns/owner={owner},external-dns/resource=service/shop/web"'


def test_ownership_is_read_from_txt_records_in_both_formats(dns_zone, tmp_path):
    legacy, typed, free = (name_in(dns_zone, n) for n in ("legacy", "typed", "free"))
    for name in (legacy, typed, free):
        set_records(dns_zone, name, 5, "A", "127.0.40.1")
    update(dns_zone, lambda m: m.replace(legacy, 5, "TXT", REGISTRY.format(owner="blue")))
    update(dns_zone, lambda m: m.replace("a-" + typed, 5, "TXT", REGISTRY.format(owner="green")))
    update(dns_zone, lambda m: m.replace(free, 5, "TXT", '"v=spf1 -all"'))
    doc = rfc2136_settings(dns_zone, tmp_path, {n: ["127.0.41.1"] for n in (legacy, typed, free)})
    settings = parse(doc)
    with open_provider(settings.provider) as provider, pytest.raises(ExternalDnsOwned) as caught:
        survey(settings, provider)
    text = str(caught.value)
    assert f"{legacy} (owner 'blue', from service/shop/web; legacy TXT record {legacy})" in text
    assert f"{typed} (owner 'green', from service/shop/web; type-prefixed TXT record a-{typed})" in text
    assert free not in text
    # a name without the registry's records is free to shift
    alone = parse(rfc2136_settings(dns_zone, tmp_path, {free: ["127.0.41.1"]}))
    with open_provider(alone.provider) as provider:
        assert survey(alone, provider).routes[free].new == Targets(("127.0.41.1",))


# --- shifting through external-dns ---------------------------------------------------------

NAME = "www.shop.test."


def service(namespace: str, address: str) -> tuple[dict, dict]:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "web", "namespace": namespace, "annotations": {HOSTNAME: NAME.rstrip(".")}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080}]}}
    status = {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}}
    return body, status


def create_service(cluster, namespace: str, address: str) -> None:
    body, status = service(namespace, address)
    cluster.request("POST", f"/api/v1/namespaces/{namespace}/services", body=body)
    cluster.request("PATCH", f"/api/v1/namespaces/{namespace}/services/web/status", body=status,
                    content_type="application/merge-patch+json")


class StandIn:
    """Does what external-dns (aws provider) does for one name, in both clusters: every
    Service with the name in its hostname annotation becomes a record set pointing at its
    load balancer address, weighted when it has a set identifier; a plain one belongs to the
    old cluster's instance (the new one's sees another owner and leaves it)."""

    def __init__(self, clusters: dict, refs: dict, client, zone_id: str) -> None:
        self.clusters, self.refs, self.client, self.zone_id = clusters, refs, client, zone_id
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def desired(self) -> tuple[Record, ...]:
        found = []
        for side, (namespace, name) in self.refs.items():
            obj = self.clusters[side].request("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
            notes = obj["metadata"].get("annotations", {})
            ip = obj["status"]["loadBalancer"]["ingress"][0]["ip"]
            ttl = int(notes.get(TTL, DEFAULT_TTL))
            if notes.get(SET_ID):
                found.append(Record(NAME, "A", ttl, (ip,), notes[SET_ID], int(notes.get(WEIGHT, 1))))
            elif side == "old":
                found.append(Record(NAME, "A", ttl, (ip,)))
        return records(found)

    def current(self) -> tuple[Record, ...]:
        found = self.client.list_resource_record_sets(HostedZoneId=self.zone_id)
        return records(from_aws(s) for s in found["ResourceRecordSets"] if s["Name"] == NAME)

    def sync(self) -> None:
        want, have = self.desired(), self.current()
        changes = ([{"Action": "DELETE", "ResourceRecordSet": to_aws(r)} for r in have
                    if r not in want]
                   + [{"Action": "UPSERT", "ResourceRecordSet": to_aws(r)} for r in want
                      if r not in have])
        if changes:
            self.client.change_resource_record_sets(HostedZoneId=self.zone_id,
                                                    ChangeBatch={"Changes": changes})

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sync()
            except BaseException as exc:  # noqa: BLE001 (reported by the test)
                self.error = exc
                return
            time.sleep(0.1)


@pytest.fixture
def route53(monkeypatch) -> Iterator[tuple]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_route53() as endpoint:
        client = route53_client(endpoint)
        yield endpoint, client, hosted_zone(client, "shop.test.")


def test_a_shift_through_external_dns_annotations(old_cluster, new_cluster, make_namespace,
                                                  route53, tmp_path):
    endpoint, client, zone_id = route53
    # the same namespace and name in both clusters, as an import leaves them
    old_ns = new_ns = make_namespace(old_cluster)
    new_cluster.client.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": new_ns}})
    create_service(old_cluster.client, old_ns, "10.0.0.1")
    create_service(new_cluster.client, new_ns, "10.1.0.1")
    clusters = {"old": old_cluster.client, "new": new_cluster.client}
    stand_in = StandIn(clusters, {"old": (old_ns, "web"), "new": (new_ns, "web")}, client, zone_id)
    stand_in.sync()
    original = stand_in.current()
    assert original == (Record(NAME, "A", DEFAULT_TTL, ("10.0.0.1",)),)
    worker = threading.Thread(target=stand_in.run, daemon=True)
    worker.start()
    doc = {
        "provider": {"kind": "external-dns", "externalDns": {
            "old": [f"service/{old_ns}/web"], "new": [f"service/{new_ns}/web"],
            "syncTimeout": 20,
            "route53": {"hostedZoneId": zone_id, "endpointUrl": endpoint, "syncInterval": 0.1}}},
        "names": [NAME], "steps": [0, 50, 100], "ttl": 1, "stepWait": 0.3,
        "gates": {**FAST_GATES, "http": False},
    }
    seen = []

    def look(event):
        if event["event"] == "written":
            weights = {r.set_id: (r.weight, r.ttl) for r in stand_in.current()}
            seen.append((event["step"], weights))

    try:
        report, _events = run_shift(doc, tmp_path / "store", clusters=clusters, on_event=look)
        assert report.outcome == "done", report.reason
        assert seen == [
            ("prepare (shift TTL, all on old)", {"old": (100, 1), "new": (0, 1)}),
            ("0 % to new", {"old": (100, 1), "new": (0, 1)}),
            ("50 % to new", {"old": (50, 1), "new": (50, 1)}),
            ("100 % to new", {"old": (0, 1), "new": (100, 1)}),
            ("finish (TTL restored)", {"old": (0, DEFAULT_TTL), "new": (100, DEFAULT_TTL)}),
        ]
        new_notes = new_cluster.client.request(
            "GET", f"/api/v1/namespaces/{new_ns}/services/web")["metadata"]["annotations"]
        assert new_notes == {HOSTNAME: NAME.rstrip("."), SET_ID: "new", WEIGHT: "100",
                             TTL: str(DEFAULT_TTL)}
        report, _events = run_shift(doc, tmp_path / "store", clusters=clusters, mode="abort")
        assert report.outcome == "rolled-back" and report.unrestored == []
        for cluster, namespace in ((old_cluster, old_ns), (new_cluster, new_ns)):
            obj = cluster.client.request("GET", f"/api/v1/namespaces/{namespace}/services/web")
            assert obj["metadata"]["annotations"] == {HOSTNAME: NAME.rstrip(".")}
        assert stand_in.current() == original
    finally:
        stand_in.stop.set()
        worker.join(timeout=10)
        new_cluster.client.request("DELETE", f"/api/v1/namespaces/{new_ns}")
    assert stand_in.error is None


def test_targets_are_read_from_load_balancer_status(new_cluster, make_namespace):
    ns = make_namespace(new_cluster)
    cluster = new_cluster.client
    body, status = service(ns, "10.1.0.9")
    cluster.request("POST", f"/api/v1/namespaces/{ns}/services", body=body)
    timer = threading.Timer(1.0, lambda: cluster.request(
        "PATCH", f"/api/v1/namespaces/{ns}/services/web/status", body=status,
        content_type="application/merge-patch+json"))
    timer.start()
    started = time.monotonic()
    found = targets_from(cluster, ObjectRef("service", ns, "web"), timeout=30, interval=0.2)
    assert found == Targets(("10.1.0.9",)) and time.monotonic() - started >= 0.9
    assert found.source == f"service/{ns}/web in {new_cluster.context}"
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web", "namespace": ns},
               "spec": {"rules": [{"host": "www.shop.test"}]}}
    cluster.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", body=ingress)
    cluster.request("PATCH", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/web/status",
                    body={"status": {"loadBalancer": {"ingress": [{"hostname": "lb.elb.example"}]}}},
                    content_type="application/merge-patch+json")
    assert targets_from(cluster, ObjectRef("ingress", ns, "web"), timeout=5) == Targets(
        hostname="lb.elb.example")
    from migrator.errors import ConfigError

    with pytest.raises(ConfigError, match="has no load balancer address"):
        targets_from(cluster, ObjectRef("service", ns, "missing"), timeout=1, interval=0.2)

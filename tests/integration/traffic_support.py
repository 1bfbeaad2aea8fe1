"""What the traffic tests share: settings for the proving ground's BIND zone, its records
read and written directly (as another party would), moto's Route53 in server mode, and a
shift run in-process with its events."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import dns.update

from migrator.store import LocalStore
from migrator.traffic import ShiftReport, StateStore, apply, open_provider, parse, survey
from migrator.traffic.records import Record, Records, records

FAST_GATES = {"interval": 0.2, "checks": 2, "threshold": 2, "retries": 1}


def key_file(dns_zone, tmp_path: Path, secret: str | None = None) -> Path:
    """A BIND key clause for the zone's TSIG key (or the same name with another secret)."""
    path = tmp_path / "tsig.key"
    path.write_text(f'key "{dns_zone.tsig_name.rstrip(".")}" {{\n'
                    f"  algorithm {dns_zone.tsig_algorithm};\n"
                    f'  secret "{secret or dns_zone.tsig_secret}";\n}};\n')
    return path


def rfc2136_settings(dns_zone, tmp_path: Path, names: dict[str, list[str]], **extra: Any
                     ) -> dict[str, Any]:
    """Settings for a shift of ``names`` (name → new targets) in the proving ground's zone,
    with second-scale waits."""
    doc: dict[str, Any] = {
        "provider": {"kind": "rfc2136", "rfc2136": {
            "server": f"{dns_zone.server}:{dns_zone.port}", "zone": dns_zone.zone,
            "tsig": {"secretFile": str(extra.pop("key", None) or key_file(dns_zone, tmp_path))}}},
        "names": [{"name": n, "new": new} for n, new in names.items()],
        "ttl": 1,
        "stepWait": 0.5,
        "gates": {**FAST_GATES, "http": False},
    }
    doc.update(extra)
    return doc


def name_in(dns_zone, part: str) -> str:
    """A name of the test's own in the zone."""
    return f"{part}.{dns_zone.label}.{dns_zone.zone}"


def update(dns_zone, build) -> None:
    """Send a signed update made by ``build(update)`` (another party's change)."""
    message = dns.update.UpdateMessage(dns_zone.zone, keyring=dns_zone.keyring(),
                                       keyname=dns_zone.tsig_name,
                                       keyalgorithm=dns_zone.tsig_algorithm)
    build(message)
    response = dns.query.tcp(message, dns_zone.server, port=dns_zone.port, timeout=5)
    assert response.rcode() == 0, response


def set_records(dns_zone, name: str, ttl: int, rtype: str, *values: str) -> None:
    update(dns_zone, lambda m: m.replace(name, ttl, rtype, *values))


def bind_records(dns_zone, name: str) -> Records:
    """The name's A, AAAA and CNAME records as BIND serves them."""
    found = []
    for rtype in ("A", "AAAA", "CNAME"):
        query = dns.message.make_query(name, rtype)
        response = dns.query.tcp(query, dns_zone.server, port=dns_zone.port, timeout=5)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rtype) and rrset.name.to_text() == name:
                found.append(Record(name, rtype, rrset.ttl, tuple(r.to_text() for r in rrset)))
    return records(found)


def run_shift(doc: dict[str, Any], store: Path, shift_id: str = "m1", *, mode: str = "start",
              take_over: bool = False, clusters=None, on_event=None
              ) -> tuple[ShiftReport, list[dict[str, Any]]]:
    """Plan and run a shift in this process, as the command does; (report, events)."""
    settings = parse(doc)
    store.mkdir(parents=True, exist_ok=True)
    states = StateStore(LocalStore(str(store)), shift_id)
    events: list[dict[str, Any]] = []

    def record(event: dict[str, Any]) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    with open_provider(settings.provider, clusters) as provider:
        if mode == "start":
            plan = survey(settings, provider, clusters, take_over=take_over)
        else:
            from migrator.traffic import replan

            plan = replan(settings, provider, states.load())
        report = apply(plan, provider, states, mode=mode, take_over=take_over, on_event=record)
    return report, events


@contextmanager
def moto_route53() -> Iterator[str]:
    """moto's server (Route53 over HTTP, as boto3 reaches AWS) on a free port: its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def route53_client(endpoint: str):
    import boto3

    return boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def hosted_zone(client, zone: str) -> str:
    """A new hosted zone's id."""
    answer = client.create_hosted_zone(Name=zone, CallerReference=f"{zone}-{time.time_ns()}")
    return answer["HostedZone"]["Id"].split("/")[-1]

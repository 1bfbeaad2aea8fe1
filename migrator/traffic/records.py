"""DNS records as every provider sees them: one plain, comparable, JSON-ready shape.

A :class:`Record` is one record set: a name, a type, a TTL, its values, and for weighted
routing (Route53) a set identifier and a weight, or an alias target instead of values. The
records of one name are a sorted tuple (:data:`Records`), so two readings compare with
``==`` and a saved reading is restored exactly. A :class:`Change` is one name's records
before and after a step; the provider turns a step's changes into one batch.

:class:`Targets` says where a name points on one cluster: addresses (A/AAAA records), a
host name (a CNAME, or a Route53 alias when its hosted zone is known).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ADDRESS_TYPES = ("A", "AAAA")
TYPES = ("A", "AAAA", "CNAME")  # what a shift moves


def absolute(name: str) -> str:
    """``name`` lower-cased and absolute (a trailing dot), the one form names are kept in."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def address_type(address: str) -> str:
    """``A`` or ``AAAA`` for an IP address; ``ValueError`` for anything else."""
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


@dataclass(frozen=True, order=True)
class Alias:
    """A Route53 alias target: another AWS resource's name and hosted zone."""

    hosted_zone_id: str
    dns_name: str
    evaluate_target_health: bool = False


@dataclass(frozen=True)
class Record:
    """One record set. ``ttl`` is None for an alias (it has the target's); ``set_id`` and
    ``weight`` are both set for a weighted record and both None for a plain one."""

    name: str
    type: str
    ttl: int | None
    values: tuple[str, ...] = ()
    set_id: str | None = None
    weight: int | None = None
    alias: Alias | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the set in its zone: name, type, set identifier."""
        return (self.name, self.type, self.set_id or "")

    @property
    def weighted(self) -> bool:
        return self.set_id is not None

    def sort_key(self) -> tuple[Any, ...]:
        """Where the set sorts among a name's sets: by type and identifier, then content."""
        alias = self.alias
        return (
            self.name,
            self.type,
            self.set_id or "",
            self.values,
            -1 if self.ttl is None else self.ttl,
            -1 if self.weight is None else self.weight,
            (alias.hosted_zone_id, alias.dns_name) if alias else (),
        )

    def targets(self) -> tuple[str, ...]:
        """What the set points at: its values, or the alias target's name."""
        return (self.alias.dns_name,) if self.alias else self.values

    def describe(self) -> str:
        """One line for people: ``app.example.com. 60 A 10.0.0.1 10.0.0.2 [old, weight 90]``."""
        ttl = "alias" if self.ttl is None else str(self.ttl)
        what = " ".join(self.targets())
        routing = f" [{self.set_id}, weight {self.weight}]" if self.weighted else ""
        return f"{self.name} {ttl} {self.type} {what}{routing}"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "type": self.type, "ttl": self.ttl}
        if self.alias:
            doc["alias"] = {
                "hostedZoneId": self.alias.hosted_zone_id,
                "dnsName": self.alias.dns_name,
                "evaluateTargetHealth": self.alias.evaluate_target_health,
            }
        else:
            doc["values"] = list(self.values)
        if self.weighted:
            doc["setIdentifier"] = self.set_id
            doc["weight"] = self.weight
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Record:
        alias = doc.get("alias")
        return cls(
            name=doc["name"],
            type=doc["type"],
            ttl=doc.get("ttl"),
            values=tuple(sorted(doc.get("values", ()))),
            set_id=doc.get("setIdentifier"),
            weight=doc.get("weight"),
            alias=Alias(alias["hostedZoneId"], alias["dnsName"], alias["evaluateTargetHealth"])
            if alias
            else None,
        )


Records = tuple[Record, ...]
RecordState = dict[str, Records]  # by name


def records(items: Iterable[Record]) -> Records:
    """The canonical (sorted, values sorted) tuple of ``items``."""
    canonical = (
        Record(r.name, r.type, r.ttl, tuple(sorted(r.values)), r.set_id, r.weight, r.alias)
        for r in items
    )
    return tuple(sorted(canonical, key=Record.sort_key))


def state_to_dict(state: Mapping[str, Records]) -> dict[str, list[dict[str, Any]]]:
    return {name: [r.to_dict() for r in recs] for name, recs in state.items()}


def state_from_dict(doc: Mapping[str, Sequence[Mapping[str, Any]]]) -> RecordState:
    return {name: records(Record.from_dict(r) for r in recs) for name, recs in doc.items()}


def ttl_of(recs: Records) -> int | None:
    """The longest TTL among ``recs`` (what a resolver may have cached), None if none has one."""
    ttls = [r.ttl for r in recs if r.ttl is not None]
    return max(ttls) if ttls else None


@dataclass(frozen=True)
class Change:
    """One name's records before and after a step (``before`` is what must be there)."""

    name: str
    before: Records
    after: Records

    @property
    def removed(self) -> Records:
        return tuple(r for r in self.before if r not in self.after)

    @property
    def added(self) -> Records:
        return tuple(r for r in self.after if r not in self.before)

    @property
    def noop(self) -> bool:
        return self.before == self.after

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "remove": [r.to_dict() for r in self.removed],
            "add": [r.to_dict() for r in self.added],
        }


def changes(before: Mapping[str, Records], after: Mapping[str, Records]) -> tuple[Change, ...]:
    """The changes that turn ``before`` into ``after``, for every name of ``after`` whose
    records differ."""
    return tuple(
        Change(name, before.get(name, ()), recs)
        for name, recs in after.items()
        if before.get(name, ()) != recs
    )


@dataclass(frozen=True)
class Targets:
    """Where a name points on one cluster: ``addresses`` (A/AAAA), or a ``hostname`` (a
    CNAME; a Route53 alias when ``alias_zone`` names the target's hosted zone)."""

    addresses: tuple[str, ...] = ()
    hostname: str | None = None
    alias_zone: str | None = None
    source: str = field(default="", compare=False)  # where they were read ("service ns/x")

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(sorted(set(self.addresses))))
        if self.hostname is not None:
            object.__setattr__(self, "hostname", absolute(self.hostname))

    @property
    def empty(self) -> bool:
        return not self.addresses and self.hostname is None

    def of_type(self, rtype: str) -> tuple[str, ...]:
        """The addresses of one family (``A`` or ``AAAA``)."""
        return tuple(a for a in self.addresses if address_type(a) == rtype)

    def values(self) -> set[str]:
        """Every value a record pointing here may hold."""
        return set(self.addresses) | ({self.hostname} if self.hostname else set())

    def describe(self) -> str:
        shown = " ".join(self.addresses) or f"{self.hostname}" + (
            f" (alias in {self.alias_zone})" if self.alias_zone else ""
        )
        return shown + (f" from {self.source}" if self.source else "")

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.addresses:
            doc["addresses"] = list(self.addresses)
        if self.hostname:
            doc["hostname"] = self.hostname
        if self.alias_zone:
            doc["aliasHostedZoneId"] = self.alias_zone
        if self.source:
            doc["source"] = self.source
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Targets:
        return cls(
            addresses=tuple(doc.get("addresses", ())),
            hostname=doc.get("hostname"),
            alias_zone=doc.get("aliasHostedZoneId"),
            source=doc.get("source", ""),
        )

    @classmethod
    def of(cls, values: Iterable[str], *, source: str = "") -> Targets:
        """Targets from plain values: IP addresses, or one host name."""
        values = list(values)
        addresses, names = [], []
        for value in values:
            try:
                address_type(value)
            except ValueError:
                names.append(value)
            else:
                addresses.append(value)
        if names and (addresses or len(names) > 1):
            raise ValueError(f"{', '.join(values)}: either IP addresses or one host name, not both")
        return cls(tuple(addresses), names[0] if names else None, source=source)

    @classmethod
    def from_records(cls, recs: Records, *, set_id: str | None = None) -> Targets:
        """What ``recs`` point at (only the set ``set_id`` of weighted records, if given)."""
        chosen = [r for r in recs if set_id is None or r.set_id == set_id]
        alias = next((r.alias for r in chosen if r.alias), None)
        if alias:
            return cls(hostname=alias.dns_name, alias_zone=alias.hosted_zone_id)
        cname = next((r for r in chosen if r.type == "CNAME"), None)
        if cname:
            return cls(hostname=cname.values[0])
        return cls(tuple(v for r in chosen if r.type in ADDRESS_TYPES for v in r.values))


@dataclass(frozen=True)
class Route:
    """One name and where it points on each cluster, resolved (targets known)."""

    name: str
    old: Targets
    new: Targets

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old.to_dict(), "new": self.new.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Route:
        return cls(doc["name"], Targets.from_dict(doc["old"]), Targets.from_dict(doc["new"]))

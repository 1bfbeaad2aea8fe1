"""external-dns: knowing when it owns the records, and shifting through it when it does.

**Ownership.** external-dns marks every record it manages with a TXT record of its registry:
``heritage=external-dns,external-dns/owner=<id>,external-dns/resource=service/ns/name``.
Older releases put it at the record's own name (the legacy format, after any
``--txt-prefix``/``--txt-suffix``), newer ones at ``<type>-<name>`` (``a-app.example.com``,
or the type where the affix's ``%{record_type}`` says), the newest at
``<type>._metadata.<name>``. :func:`find_owners` reads them all through the provider;
writing such records directly would make migrator and external-dns undo each other's
changes, so a direct shift refuses (:func:`refuse_if_owned`) and says how to go on.

**Shifting through external-dns** (provider ``external-dns``): the records stay
external-dns's. The shift sets, on each cluster's Services/Ingresses that publish the names,
the annotations external-dns reads for weighted Route53 records (``set-identifier``,
``aws-weight``) and the TTL (``ttl``), as server-side apply field manager "migrator", and
waits until Route53 shows the weights. The "records" this provider reads and writes are
those annotations, one :class:`~migrator.traffic.records.Record` of type ``OBJECT`` per
object and name (the value names the cluster side and the object), so saving, comparing,
restoring and rolling back work as for DNS records; putting the saved annotations back is
the rollback, and external-dns then rewrites the records as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.errors import ApiError, ConfigError, DnsUnreachable, ExternalDnsOwned
from migrator.kube import Cluster
from migrator.kube.wait import READY, WAITING, Readiness, wait_for
from migrator.resources.objects import annotations_of, dig
from migrator.traffic.endpoints import API, load_balancer_targets, ref_path
from migrator.traffic.providers.base import Provider, guard_failed
from migrator.traffic.providers.route53 import Route53Provider
from migrator.traffic.records import (
    TYPES,
    Change,
    Record,
    Records,
    RecordState,
    Route,
    Targets,
    absolute,
    records,
    ttl_of,
)
from migrator.traffic.settings import ObjectRef, ProviderSettings

PREFIX = "external-dns.alpha.kubernetes.io/"
HOSTNAME = PREFIX + "hostname"
SET_ID = PREFIX + "set-identifier"
WEIGHT = PREFIX + "aws-weight"
TTL = PREFIX + "ttl"
OBJECT = "OBJECT"  # the type of this provider's records: an object's annotations
SIDES = ("old", "new")


# --- ownership ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    """external-dns's registry entry for a name: where, in which format, whose."""

    name: str
    txt_name: str
    format: str  # legacy, type-prefixed, metadata
    owner: str
    resource: str

    def describe(self) -> str:
        owner = f"owner {self.owner!r}" + (f", from {self.resource}" if self.resource else "")
        return f"{self.name} ({owner}; {self.format} TXT record {self.txt_name})"


def registry_names(name: str, prefix: str = "", suffix: str = "") -> list[tuple[str, str]]:
    """(format, TXT name) of every place external-dns may keep ``name``'s ownership."""
    first, _, rest = absolute(name).partition(".")
    typed = "%{record_type}" in prefix + suffix

    def affix(label: str, rtype: str) -> str:
        p, s = (a.replace("%{record_type}", rtype) for a in (prefix, suffix))
        return f"{p}{label}{s}.{rest}"

    found = [("legacy", affix(first, ""))]
    for rtype in (t.lower() for t in TYPES):
        found.append(("type-prefixed", affix(first if typed else f"{rtype}-{first}", rtype)))
        found.append(("metadata", f"{rtype}._metadata.{absolute(name)}"))
    return list(dict.fromkeys(found))


def parse_registry(text: str) -> dict[str, str] | None:
    """The labels of an external-dns registry TXT value, or None if it is not one."""
    labels = dict(part.split("=", 1) for part in text.strip().strip('"').split(",") if "=" in part)
    return labels if labels.get("heritage") == "external-dns" else None


def find_owners(
    provider: Provider, names: Sequence[str], prefix: str = "", suffix: str = ""
) -> list[Ownership]:
    """Every registry entry external-dns keeps for ``names`` (read through ``provider``)."""
    found = []
    for name in names:
        for form, txt_name in registry_names(name, prefix, suffix):
            for text in provider.txt(txt_name):
                labels = parse_registry(text)
                if labels is not None:
                    found.append(
                        Ownership(
                            name,
                            txt_name,
                            form,
                            labels.get("external-dns/owner", ""),
                            labels.get("external-dns/resource", ""),
                        )
                    )
    return found


def refuse_if_owned(
    provider: Provider, names: Sequence[str], prefix: str = "", suffix: str = ""
) -> None:
    """Raise :class:`ExternalDnsOwned` if external-dns manages any of ``names``."""
    owned = find_owners(provider, names, prefix, suffix)
    if owned:
        raise ExternalDnsOwned(
            "external-dns manages these records, so writing them directly would make the two "
            "undo each other's changes: " + "; ".join(o.describe() for o in owned),
            hint="shift through external-dns instead (provider external-dns: weights on each "
            "cluster's Services/Ingresses), or stop external-dns managing these names in both "
            "clusters (remove their hostname annotation or Ingress host) and delete its TXT "
            "records, then run again",
        )


# --- the provider ---------------------------------------------------------------------


def published_names(obj: Mapping[str, Any]) -> set[str]:
    """The names external-dns publishes for an object: its hostname annotation, and an
    Ingress's rule and TLS hosts."""
    names = {absolute(n) for n in annotations_of(obj).get(HOSTNAME, "").split(",") if n.strip()}
    if obj.get("kind") == "Ingress":
        names |= {absolute(r["host"]) for r in dig(obj, "spec", "rules") or [] if r.get("host")}
        names |= {absolute(h) for t in dig(obj, "spec", "tls") or [] for h in t.get("hosts", [])}
    return names


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ExternalDnsProvider(Provider):
    """Weights through external-dns's annotations, watched in Route53 (module doc).
    ``clusters`` holds the ``old`` and ``new`` cluster connections."""

    kind = "external-dns"

    def __init__(
        self,
        settings: ProviderSettings,
        clusters: Mapping[str, Cluster],
        *,
        watch: Provider | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, sleep=sleep)
        assert settings.external_dns is not None
        self.config = settings.external_dns
        self.clusters = clusters
        self.clock = clock
        self.watch = watch or Route53Provider(
            settings, route53=self.config.route53, clock=clock, sleep=sleep
        )

    def _refs(self) -> list[tuple[str, ObjectRef]]:
        return [("old", r) for r in self.config.old] + [("new", r) for r in self.config.new]

    def _get(self, side: str, ref: ObjectRef) -> dict[str, Any]:
        try:
            return self.clusters[side].request("GET", ref_path(ref))
        except ApiError as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"{ref} does not exist in the {side} cluster ({self.clusters[side].context})"
                ) from exc
            raise

    def check(self) -> None:
        for side, ref in self._refs():
            self._get(side, ref)
        self.watch.check()

    def read(self, names: Sequence[str]) -> RecordState:
        objects = {(side, ref): self._get(side, ref) for side, ref in self._refs()}
        return {
            name: records(
                self._record(name, side, ref, obj)
                for (side, ref), obj in objects.items()
                if name in published_names(obj)
            )
            for name in names
        }

    @staticmethod
    def _record(name: str, side: str, ref: ObjectRef, obj: Mapping[str, Any]) -> Record:
        notes = annotations_of(obj)
        return Record(
            name,
            OBJECT,
            _int(notes.get(TTL)),
            (f"{side} {ref}",),
            notes.get(SET_ID),
            _int(notes.get(WEIGHT)),
        )

    def txt(self, name: str) -> list[str]:
        return self.watch.txt(name)

    def cached_ttls(self, found: RecordState) -> dict[str, int | None]:
        """The TTLs of the records external-dns wrote (the annotations may not say)."""
        return {name: ttl_of(recs) for name, recs in self.watch.read(list(found)).items()}

    def default_targets(self, name: str, side: str) -> Targets | None:
        """The load balancer address of the first object of ``side`` that publishes
        ``name`` (what external-dns points the name at)."""
        for ref in self.config.old if side == "old" else self.config.new:
            obj = self._get(side, ref)
            if name in published_names(obj):
                return load_balancer_targets(obj, f"{ref} in {self.clusters[side].context}")
        return None

    def render(
        self, route: Route, percent: int, ttl: int | None, original: Records = ()
    ) -> Records:
        weights = {"old": 100 - percent, "new": percent}
        ids = dict(zip(SIDES, self.settings.set_ids, strict=True))
        return records(
            Record(route.name, OBJECT, ttl, r.values, ids[side], weights[side])
            for r in original
            for side in [r.values[0].split()[0]]
        )

    def validate(self, name: str, recs: Records) -> None:
        sides = {r.values[0].split()[0] for r in recs}
        for side in SIDES:
            if side not in sides:
                objects = self.config.old if side == "old" else self.config.new
                raise ConfigError(
                    f"no object of the {side} cluster publishes {name} "
                    f"(looked at {', '.join(map(str, objects))})",
                    hint=f"give {name} in their {HOSTNAME} annotation (or an Ingress rule's "
                    "host), or list the objects that do under externalDns",
                )

    def share(self, route: Route, recs: Records) -> float:
        total = sum(r.weight or 0 for r in recs)
        new = sum(r.weight or 0 for r in recs if r.values[0].startswith("new "))
        return new / total if total else 0.0

    def operations(self, changes: Sequence[Change]) -> list[Any]:
        return [
            {"cluster": side, "object": str(ref), "annotations": notes}
            for (side, ref), notes in self._annotations(changes).items()
        ]

    def _annotations(
        self, changes: Sequence[Change]
    ) -> dict[tuple[str, ObjectRef], dict[str, str]]:
        """The annotations each changed object is applied with."""
        wanted: dict[tuple[str, ObjectRef], dict[str, str]] = {}
        # the same namespace/name in both clusters is the usual case: the side tells them apart
        lookup = {f"{side} {ref}": (side, ref) for side, ref in self._refs()}
        for change in changes:
            for r in change.added:
                notes = {SET_ID: r.set_id, WEIGHT: r.weight, TTL: r.ttl}
                wanted[lookup[r.values[0]]] = {k: str(v) for k, v in notes.items() if v is not None}
        return wanted

    def send(self, changes: Sequence[Change]) -> None:
        current = self.read([c.name for c in changes])
        moved = [c for c in changes if current[c.name] != c.before]
        if moved:
            raise guard_failed(moved, "annotations read again just before applying")
        for (side, ref), notes in self._annotations(changes).items():
            _api_version, _resource, kind = API[ref.kind]
            body = {
                "apiVersion": API[ref.kind][0],
                "kind": kind,
                "metadata": {"name": ref.name, "namespace": ref.namespace, "annotations": notes},
            }
            self.clusters[side].apply(ref_path(ref), body, force=True)
        self._wait_published([c.name for c in changes], {c.name: c.after for c in changes})

    def _wait_published(self, names: list[str], wanted: Mapping[str, Records]) -> None:
        """Wait until Route53 shows, for every name, the sets the annotations ask for."""

        def check(state: RecordState) -> Readiness:
            late = [n for n in names if not dns_shows(state.get(n, ()), wanted[n])]
            if late:
                return Readiness(WAITING, "external-dns has not published " + ", ".join(late))
            return Readiness(READY)

        waited = wait_for(
            lambda: self.watch.read(names),
            check,
            timeout=self.config.sync_timeout,
            interval=self.config.route53.sync_interval,
            clock=self.clock,
            sleep=self.sleep,
        )
        if not waited.ready:
            raise DnsUnreachable(
                waited.readiness.reason,
                hint="check that external-dns runs in both clusters with the aws provider; "
                "the same command with --resume goes on once the records show the weights",
            )


def dns_shows(dns: Records, objects: Records) -> bool:
    """Whether Route53's sets of a name are what external-dns makes of the objects'
    annotations: a weighted set per set identifier with its weight (and the TTL, when
    annotated), or, with no set identifier at all, plain sets only."""
    weighted = [r for r in objects if r.set_id]
    if not weighted:
        return (
            bool(dns)
            and not any(r.weighted for r in dns)
            and all(r.ttl is None or d.ttl in (None, r.ttl) for r in objects for d in dns)
        )
    sets = {d.set_id: d for d in dns if d.weighted}
    if any(not d.weighted for d in dns):
        return False
    return all(
        r.set_id in sets
        and sets[r.set_id].weight == r.weight
        and (r.ttl is None or sets[r.set_id].ttl in (None, r.ttl))
        for r in weighted
    )

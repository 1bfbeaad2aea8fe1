"""Network differences: Service cluster IPs, NetworkPolicy CIDRs, ingress classes.

A CIDR or CNI swap gives the new cluster another service and pod range. Addresses are
remapped at the same offset: 10.96.0.10 in 10.96.0.0/16 becomes 10.112.0.10 in
10.112.0.0/16, so a Service that clients reach by a fixed IP keeps a predictable one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.transform.base import Change, Severity
from migrator.transform.differences.base import Obj, dig, remove_value, rename, set_value
from migrator.transform.jsonpatch import join_pointer

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
CidrPair = tuple[Network, Network]
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
CLUSTER_IP_POLICIES = ("drop", "keep", "remap")


def remap_address(address: str, pairs: Sequence[CidrPair]) -> str | None:
    """``address`` moved from an old range to the new one at the same offset, or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for old, new in pairs:
        if ip.version == old.version and ip in old:
            offset = int(ip) - int(old.network_address)
            if offset < new.num_addresses:
                return str(new.network_address + offset)
    return None


def remap_network(cidr: str, pairs: Sequence[CidrPair]) -> str | None:
    """A block inside an old range moved to the new one at the same offset, or None."""
    try:
        block = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    for old, new in pairs:
        if block.version == old.version and block.subnet_of(old):  # type: ignore[arg-type]
            moved = remap_address(str(block.network_address), [(old, new)])
            if moved is not None and block.prefixlen >= new.prefixlen:
                return f"{moved}/{block.prefixlen}"
    return None


@dataclass(frozen=True)
class ClusterIPPolicy:
    """Service ``clusterIP``/``clusterIPs``: drop (allocate anew), keep, or remap.

    Headless Services (``None``) are never touched: that is the user's choice, not an
    address. An address a remap cannot place is dropped, with a line for a person.
    """

    policy: str
    service_cidrs: Sequence[CidrPair] = ()
    name: str = "differences.clusterIP"
    kinds: frozenset[tuple[str, str]] = frozenset({("", "Service")})

    def apply(self, obj: Obj) -> list[Change]:
        spec = obj.get("spec")
        if self.policy == "keep" or not isinstance(spec, dict) or spec.get("clusterIP") == "None":
            return []
        changes = []
        for key in ("clusterIP", "clusterIPs"):
            if key in spec:
                changes += self._one(spec, key)
        return changes

    def _one(self, spec: Obj, key: str) -> list[Change]:
        before = spec[key]
        pointer = f"/spec/{key}"
        if self.policy == "drop":
            return remove_value(
                spec, key, pointer, self.name, "allocated anew from the new cluster's service CIDR"
            )
        values = before if isinstance(before, list) else [before]
        mapped = [remap_address(v, self.service_cidrs) if v else v for v in values]
        if any(m is None for m in mapped):
            return remove_value(
                spec,
                key,
                pointer,
                self.name,
                "outside the old service CIDR: cannot be remapped, the new cluster allocates one",
                Severity.REVIEW,
            )
        after: Any = mapped if isinstance(before, list) else mapped[0]
        return set_value(
            spec,
            key,
            after,
            pointer,
            self.name,
            "remapped to the new service CIDR at the same offset",
        )


@dataclass(frozen=True)
class PodCidrRewrite:
    """NetworkPolicy ``ipBlock`` CIDRs inside the old pod range → the new pod range."""

    pod_cidrs: Sequence[CidrPair]
    name: str = "differences.podCIDR"
    kinds: frozenset[tuple[str, str]] = frozenset(
        {
            ("networking.k8s.io", "NetworkPolicy"),
            ("extensions", "NetworkPolicy"),
        }
    )

    def apply(self, obj: Obj) -> list[Change]:
        changes = []
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(dig(obj, "spec", direction) or ()):
                for j, peer in enumerate(rule.get(peers_key) or ()):
                    block = peer.get("ipBlock")
                    if isinstance(block, dict):
                        base = f"/spec/{direction}/{i}/{peers_key}/{j}/ipBlock"
                        changes += self._block(block, base)
        return changes

    def _block(self, block: Obj, base: str) -> list[Change]:
        changes = self._cidr(block, "cidr", f"{base}/cidr")
        for index in range(len(block.get("except") or ())):
            changes += self._cidr(block["except"], index, f"{base}/except/{index}")
        return changes

    def _cidr(self, holder: Any, key: Any, pointer: str) -> list[Change]:
        old = holder[key]
        new = remap_network(old, self.pod_cidrs) if isinstance(old, str) else None
        if new is not None:
            return set_value(
                holder, key, new, pointer, self.name, "pod CIDR block moved to the new pod CIDR"
            )
        if isinstance(old, str) and self._overlaps(old):
            return [
                Change(
                    path=pointer,
                    action="keep",
                    before=old,
                    source=self.name,
                    severity=Severity.REVIEW,
                    reason="overlaps the old pod CIDR without lying inside it: "
                    "check what it should match on the new cluster",
                )
            ]
        return []

    def _overlaps(self, cidr: str) -> bool:
        try:
            block = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        return any(
            block.version == old.version and block.overlaps(old) for old, _new in self.pod_cidrs
        )


@dataclass(frozen=True)
class IngressClassMap:
    """Ingress classes: ``ingressClassName``, the legacy annotation, and IngressClass objects."""

    mapping: Mapping[str, str]
    name: str = "differences.ingressClasses"
    kinds: frozenset[tuple[str, str]] = frozenset(
        {
            ("networking.k8s.io", "Ingress"),
            ("extensions", "Ingress"),
            ("networking.k8s.io", "IngressClass"),
        }
    )

    def apply(self, obj: Obj) -> list[Change]:
        if obj.get("kind") == "IngressClass":
            return rename(
                obj.get("metadata"),
                "name",
                self.mapping,
                "/metadata/name",
                self.name,
                "ingress class renamed for the new cluster",
            )
        reason = "ingress class mapped to the new cluster's"
        changes = rename(
            obj.get("spec"),
            "ingressClassName",
            self.mapping,
            "/spec/ingressClassName",
            self.name,
            reason,
        )
        changes += rename(
            dig(obj, "metadata", "annotations"),
            INGRESS_CLASS_ANNOTATION,
            self.mapping,
            join_pointer("metadata", "annotations", INGRESS_CLASS_ANNOTATION),
            self.name,
            reason,
        )
        return changes


def parse_cidr_pair(text: str) -> CidrPair:
    """``"10.96.0.0/16=10.112.0.0/16"`` → the two networks; ValueError says what is wrong."""
    old, sep, new = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r} is not OLD=NEW")
    pair = (ipaddress.ip_network(old.strip()), ipaddress.ip_network(new.strip()))
    if pair[0].version != pair[1].version:
        raise ValueError(f"{text!r} maps between IPv{pair[0].version} and IPv{pair[1].version}")
    return pair

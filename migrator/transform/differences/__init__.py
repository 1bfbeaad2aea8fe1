"""Cluster-difference rules: built in, opt in, configured by the rules file and CLI flags.

The ``differences:`` section of a rules file (keys below) and the CLI flags give a
:class:`DifferencesConfig`; :func:`build` turns it into the rules the runner applies, in a
fixed order. Flags win over the file, key by key::

    differences:
      storageClasses: {standard: fast-ssd}        # --storage-class standard=fast-ssd
      zones: {eu-west-1a: eu-central-1a}          # (file only)
      registries: {registry.old: registry.new}    # --registry registry.old=registry.new
      namespaces: {shop: shop-v2}                 # --namespace-map shop=shop-v2
      clusterIP: remap                            # --cluster-ip drop|keep|remap
      serviceCIDR: 10.96.0.0/16=10.112.0.0/16     # --service-cidr (a list for dual stack)
      podCIDR: 10.244.0.0/16=10.248.0.0/16        # --pod-cidr
      ingressClasses: {nginx: nginx-v2}           # --ingress-class nginx=nginx-v2
      moveVolumeData: true                        # (file, and a plan with volumes)

``moveVolumeData`` gives claims fresh volumes and holds their writers at zero replicas until
the data is moved (:mod:`.volumedata`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from migrator.errors import DifferencesInvalid
from migrator.transform.differences.base import DifferenceRule, applies
from migrator.transform.differences.images import RegistryRewrite
from migrator.transform.differences.namespaces import NamespaceRename
from migrator.transform.differences.network import (
    CLUSTER_IP_POLICIES,
    CidrPair,
    ClusterIPPolicy,
    IngressClassMap,
    PodCidrRewrite,
    parse_cidr_pair,
)
from migrator.transform.differences.storage import (
    StorageClassMap,
    ZoneMap,
    renamed_classes_yield,
)
from migrator.transform.differences.volumedata import MovedVolumeData

__all__ = [
    "DifferenceRule",
    "DifferencesConfig",
    "DifferencesInvalid",
    "applies",
    "build",
    "parse_config",
    "parse_pairs",
]

_MAPPINGS = {
    "storageClasses": "storage_classes",
    "zones": "zones",
    "registries": "registries",
    "namespaces": "namespaces",
    "ingressClasses": "ingress_classes",
}
_CIDRS = {"serviceCIDR": "service_cidrs", "podCIDR": "pod_cidrs"}
KEYS = (*_MAPPINGS, *_CIDRS, "clusterIP", "moveVolumeData")


@dataclass(frozen=True)
class DifferencesConfig:
    """Every difference setting; empty means the rule is off."""

    storage_classes: Mapping[str, str] = field(default_factory=dict)
    zones: Mapping[str, str] = field(default_factory=dict)
    registries: Mapping[str, str] = field(default_factory=dict)
    namespaces: Mapping[str, str] = field(default_factory=dict)
    ingress_classes: Mapping[str, str] = field(default_factory=dict)
    cluster_ip: str | None = None
    service_cidrs: tuple[CidrPair, ...] = ()
    pod_cidrs: tuple[CidrPair, ...] = ()
    move_volume_data: bool = False

    def merged(self, override: DifferencesConfig) -> DifferencesConfig:
        """This configuration with every setting ``override`` gives replacing ours."""
        changed = {
            f.name: getattr(override, f.name) for f in fields(self) if getattr(override, f.name)
        }
        return replace(self, **changed)

    def target_wins(self) -> list[dict[str, str]]:
        """The objects of the new snapshot that yield to the target's own of the same name
        (see :mod:`migrator.resources.inventory`): renamed storage classes."""
        return renamed_classes_yield(self.storage_classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the rules file's spelling (for manifests and reports)."""
        data: dict[str, Any] = {
            key: dict(getattr(self, attr)) for key, attr in _MAPPINGS.items() if getattr(self, attr)
        }
        data |= {
            key: [f"{old}={new}" for old, new in getattr(self, attr)]
            for key, attr in _CIDRS.items()
            if getattr(self, attr)
        }
        if self.cluster_ip:
            data["clusterIP"] = self.cluster_ip
        if self.move_volume_data:
            data["moveVolumeData"] = True
        return data


def parse_pairs(values: Iterable[str], what: str) -> dict[str, str]:
    """``["a=b", "c=d"]`` → ``{"a": "b", "c": "d"}``; DifferencesInvalid names ``what``."""
    pairs = {}
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise DifferencesInvalid(what, f"{value!r} is not OLD=NEW")
        pairs[old.strip()] = new.strip()
    return pairs


def parse_cidrs(values: Iterable[str], what: str) -> tuple[CidrPair, ...]:
    """CIDR pairs ``OLD=NEW``; DifferencesInvalid names ``what``."""
    try:
        return tuple(parse_cidr_pair(v) for v in values)
    except ValueError as exc:
        raise DifferencesInvalid(what, str(exc)) from exc


def check_cluster_ip(policy: str | None, service_cidrs: tuple[CidrPair, ...], what: str) -> None:
    """The clusterIP policy must be known, and ``remap`` needs the service CIDRs."""
    if policy is not None and policy not in CLUSTER_IP_POLICIES:
        raise DifferencesInvalid(what, f"{policy!r} is not one of {', '.join(CLUSTER_IP_POLICIES)}")
    if policy == "remap" and not service_cidrs:
        raise DifferencesInvalid(what, "remap needs the service CIDRs (serviceCIDR: OLD=NEW)")


def parse_config(section: Any, prefix: str = "differences") -> DifferencesConfig:
    """The ``differences:`` section of a rules file; DifferencesInvalid names the field."""
    if section is None:
        return DifferencesConfig()
    if not isinstance(section, Mapping):
        raise DifferencesInvalid(prefix, "must be a mapping")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise DifferencesInvalid(
            f"{prefix}.{unknown[0]}", f"unknown setting (known: {', '.join(KEYS)})"
        )
    values: dict[str, Any] = {}
    for key, attr in _MAPPINGS.items():
        if key in section:
            values[attr] = _string_map(section[key], f"{prefix}.{key}")
    for key, attr in _CIDRS.items():
        if key in section:
            raw = section[key]
            items = raw if isinstance(raw, list) else [raw]
            if not all(isinstance(i, str) for i in items):
                raise DifferencesInvalid(f"{prefix}.{key}", "must be OLD=NEW or a list of them")
            values[attr] = parse_cidrs(items, f"{prefix}.{key}")
    if "clusterIP" in section:
        values["cluster_ip"] = section["clusterIP"]
        if not isinstance(values["cluster_ip"], str):
            raise DifferencesInvalid(f"{prefix}.clusterIP", "must be drop, keep or remap")
    if "moveVolumeData" in section:
        if not isinstance(section["moveVolumeData"], bool):
            raise DifferencesInvalid(f"{prefix}.moveVolumeData", "must be true or false")
        values["move_volume_data"] = section["moveVolumeData"]
    config = DifferencesConfig(**values)
    check_cluster_ip(config.cluster_ip, config.service_cidrs, f"{prefix}.clusterIP")
    return config


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise DifferencesInvalid(what, "must map old names to new names (strings)")
    return dict(value)


def build(config: DifferencesConfig) -> list[DifferenceRule]:
    """The rules ``config`` switches on, namespace rename first (other rules see new names)."""
    rules: list[DifferenceRule] = []
    if config.namespaces:
        rules.append(NamespaceRename(config.namespaces))
    if config.storage_classes:
        rules.append(StorageClassMap(config.storage_classes))
    if config.zones:
        rules.append(ZoneMap(config.zones))
    if config.registries:
        rules.append(RegistryRewrite(config.registries))
    if config.cluster_ip:
        rules.append(ClusterIPPolicy(config.cluster_ip, config.service_cidrs))
    if config.pod_cidrs:
        rules.append(PodCidrRewrite(config.pod_cidrs))
    if config.ingress_classes:
        rules.append(IngressClassMap(config.ingress_classes))
    if config.move_volume_data:
        rules.append(MovedVolumeData())
    return rules

"""Namespace rename: the objects move, and every reference to the namespace follows.

References followed: ``metadata.namespace`` of every namespaced object, the Namespace object
itself (and its ``kubernetes.io/metadata.name`` label), RoleBinding and ClusterRoleBinding
subjects, PV ``claimRef``, the service references of webhook configurations, APIServices
and CRD conversion webhooks, NetworkPolicy namespace selectors by name, and the namespaces
listed in pod (anti-)affinity terms.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.transform.base import Change
from migrator.transform.differences.base import Obj, dig, rename, set_value
from migrator.transform.jsonpatch import join_pointer
from migrator.transform.podspecs import pod_spec

NAME_LABEL = "kubernetes.io/metadata.name"
_AFFINITIES = ("podAffinity", "podAntiAffinity")


def _service_refs(obj: Obj) -> Iterator[tuple[str, Any]]:
    """(pointer, service reference) pairs of webhook configurations, APIServices and CRDs."""
    kind = obj.get("kind")
    if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for i, hook in enumerate(obj.get("webhooks") or ()):
            yield f"/webhooks/{i}/clientConfig/service", dig(hook, "clientConfig", "service")
    elif kind == "APIService":
        yield "/spec/service", dig(obj, "spec", "service")
    elif kind == "CustomResourceDefinition":
        yield (
            "/spec/conversion/webhook/clientConfig/service",
            dig(obj, "spec", "conversion", "webhook", "clientConfig", "service"),
        )
        yield (
            "/spec/conversion/webhookClientConfig/service",
            dig(obj, "spec", "conversion", "webhookClientConfig", "service"),
        )


def _selectors(obj: Obj) -> Iterator[tuple[str, Any]]:
    """(pointer, matchLabels) of every NetworkPolicy peer's namespace selector."""
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(dig(obj, "spec", direction) or ()):
            for j, peer in enumerate(rule.get(peers_key) or ()):
                yield (
                    f"/spec/{direction}/{i}/{peers_key}/{j}/namespaceSelector/matchLabels",
                    dig(peer, "namespaceSelector", "matchLabels"),
                )


def _affinity_terms(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(pointer, pod affinity term) of every (anti-)affinity term of the object's pod spec."""
    found = pod_spec(obj)
    if found is None:
        return
    base, spec = found
    for kind in _AFFINITIES:
        affinity = dig(spec, "affinity", kind) or {}
        for i, term in enumerate(
            affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
        ):
            yield f"{base}/affinity/{kind}/requiredDuringSchedulingIgnoredDuringExecution/{i}", term
        for i, weighted in enumerate(
            affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
        ):
            yield (
                f"{base}/affinity/{kind}/preferredDuringSchedulingIgnoredDuringExecution/{i}"
                "/podAffinityTerm",
                weighted.get("podAffinityTerm") or {},
            )


@dataclass(frozen=True)
class NamespaceRename:
    """Move objects from old namespaces to new ones, references included."""

    mapping: Mapping[str, str]
    name: str = "differences.namespaces"
    kinds: None = None

    def apply(self, obj: Obj) -> list[Change]:
        reason = "namespace renamed for the new cluster"
        meta = obj.get("metadata")
        changes = rename(meta, "namespace", self.mapping, "/metadata/namespace", self.name, reason)
        if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
            changes += rename(meta, "name", self.mapping, "/metadata/name", self.name, reason)
            changes += rename(
                dig(meta, "labels"),
                NAME_LABEL,
                self.mapping,
                join_pointer("metadata", "labels", NAME_LABEL),
                self.name,
                reason,
            )
        for i, subject in enumerate(
            obj.get("subjects") or ()
            if obj.get("kind") in ("RoleBinding", "ClusterRoleBinding")
            else ()
        ):
            changes += rename(
                subject,
                "namespace",
                self.mapping,
                f"/subjects/{i}/namespace",
                self.name,
                "binding subject follows its renamed namespace",
            )
        if obj.get("kind") == "PersistentVolume":
            changes += rename(
                dig(obj, "spec", "claimRef"),
                "namespace",
                self.mapping,
                "/spec/claimRef/namespace",
                self.name,
                "claimRef follows the claim's renamed namespace",
            )
        for pointer, service in _service_refs(obj):
            changes += rename(
                service,
                "namespace",
                self.mapping,
                f"{pointer}/namespace",
                self.name,
                "service reference follows its renamed namespace",
            )
        if obj.get("kind") == "NetworkPolicy":
            for pointer, labels in _selectors(obj):
                changes += rename(
                    labels,
                    NAME_LABEL,
                    self.mapping,
                    f"{pointer}/{join_pointer(NAME_LABEL)[1:]}",
                    self.name,
                    "namespace selector by name follows the rename",
                )
        for pointer, term in _affinity_terms(obj):
            changes += self._term_namespaces(term, f"{pointer}/namespaces")
        return changes

    def _term_namespaces(self, term: Obj, pointer: str) -> list[Change]:
        names = term.get("namespaces")
        if not isinstance(names, list):
            return []
        mapped = [self.mapping.get(n, n) for n in names]
        return set_value(
            term,
            "namespaces",
            mapped,
            pointer,
            self.name,
            "affinity term namespaces follow the rename",
        )

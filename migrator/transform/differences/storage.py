"""Storage differences: storage class names and the zones PVs are pinned to.

StatefulSet ``volumeClaimTemplates`` are immutable once the StatefulSet exists, so they must
be right before import: they are mapped together with PVs, PVCs and the StorageClass objects.

A renamed StorageClass object stands for a class of the new cluster: when the target already
has one of that name (its own provisioner and parameters), the target's class wins. The
transform says so in the new snapshot (:func:`renamed_classes_yield`), so the import leaves
the target's class alone and verify does not compare it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from migrator.resources.inventory import yields
from migrator.transform.base import Change
from migrator.transform.differences.base import Obj, dig, rename, set_value
from migrator.transform.jsonpatch import join_pointer

BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def _claim_changes(
    claim: Obj, base: str, mapping: Mapping[str, str], rule: str, reason: str
) -> list[Change]:
    """Map a PV/PVC-shaped object's class in ``spec`` and in the beta annotation."""
    changes = rename(
        claim.get("spec"),
        "storageClassName",
        mapping,
        f"{base}/spec/storageClassName",
        rule,
        reason,
    )
    changes += rename(
        dig(claim, "metadata", "annotations"),
        BETA_CLASS_ANNOTATION,
        mapping,
        f"{base}{join_pointer('metadata', 'annotations', BETA_CLASS_ANNOTATION)}",
        rule,
        reason,
    )
    return changes


@dataclass(frozen=True)
class StorageClassMap:
    """Rename storage classes: the StorageClass objects and every PV, PVC and claim template."""

    mapping: Mapping[str, str]
    name: str = "differences.storageClasses"
    kinds: frozenset[tuple[str, str]] = frozenset(
        {
            ("storage.k8s.io", "StorageClass"),
            ("", "PersistentVolume"),
            ("", "PersistentVolumeClaim"),
            ("apps", "StatefulSet"),
        }
    )

    def apply(self, obj: Obj) -> list[Change]:
        kind = obj.get("kind")
        if kind == "StorageClass":
            return rename(
                obj.get("metadata"),
                "name",
                self.mapping,
                "/metadata/name",
                self.name,
                "storage class renamed for the new cluster",
            )
        if kind == "StatefulSet":
            changes = []
            reason = "claim template storage class (immutable once the StatefulSet exists)"
            for index, template in enumerate(dig(obj, "spec", "volumeClaimTemplates") or ()):
                changes += _claim_changes(
                    template, f"/spec/volumeClaimTemplates/{index}", self.mapping, self.name, reason
                )
            return changes
        return _claim_changes(
            obj, "", self.mapping, self.name, "storage class mapped to the new cluster's"
        )


def renamed_classes_yield(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    """The StorageClasses ``mapping`` renames onto, each yielding to the target's own."""
    return [
        yields(
            "storage.k8s.io",
            "StorageClass",
            new,
            f"renamed from {old} (--storage-class {old}={new}): the target's own class "
            "of that name wins, it is neither updated nor compared",
        )
        for old, new in sorted(mapping.items())
    ]


@dataclass(frozen=True)
class ZoneMap:
    """Map availability zones in PV node affinity, PV zone labels and StorageClass topologies."""

    mapping: Mapping[str, str]
    name: str = "differences.zones"
    kinds: frozenset[tuple[str, str]] = frozenset(
        {
            ("", "PersistentVolume"),
            ("storage.k8s.io", "StorageClass"),
        }
    )

    def apply(self, obj: Obj) -> list[Change]:
        changes: list[Change] = []
        labels = dig(obj, "metadata", "labels")
        for label in ZONE_LABELS:
            changes += rename(
                labels,
                label,
                self.mapping,
                join_pointer("metadata", "labels", label),
                self.name,
                "zone label mapped to the new cluster's zone",
            )
        if obj.get("kind") == "StorageClass":
            for i, term in enumerate(obj.get("allowedTopologies") or ()):
                changes += self._values(
                    term.get("matchLabelExpressions"),
                    f"/allowedTopologies/{i}/matchLabelExpressions",
                )
            return changes
        terms = dig(obj, "spec", "nodeAffinity", "required", "nodeSelectorTerms") or ()
        for i, term in enumerate(terms):
            changes += self._values(
                term.get("matchExpressions"),
                f"/spec/nodeAffinity/required/nodeSelectorTerms/{i}/matchExpressions",
            )
        return changes

    def _values(self, expressions: list[Obj] | None, base: str) -> list[Change]:
        """Map the ``values`` of zone expressions (``key`` one of the zone labels)."""
        changes = []
        for index, expression in enumerate(expressions or ()):
            if expression.get("key") not in ZONE_LABELS:
                continue
            values = expression.get("values") or []
            mapped = [self.mapping.get(v, v) for v in values]
            if mapped != values:
                changes += set_value(
                    expression,
                    "values",
                    mapped,
                    f"{base}/{index}/values",
                    self.name,
                    "node affinity pinned to the new cluster's zones",
                )
        return changes

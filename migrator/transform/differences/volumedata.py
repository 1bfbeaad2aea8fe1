"""Claims whose data migrator moves: a fresh volume in the new cluster, its writers held.

When volume data goes through the mover, each claim must get a new, empty volume in the
new cluster (the movers fill it), not a binding to the old cluster's volume; and the
workloads that mount claims must not start before their data is there (they would write
into an empty volume the final pass then replaces). So: a claim loses its binding to the
old volume (``spec.volumeName`` and the binder's annotations), and a workload mounting
claims is imported at zero replicas, its replicas kept in the annotation every stop and
start of migrator uses (:mod:`migrator.resources.scaling`); the run starts it once the
data is checked. DaemonSets cannot be held; they are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.resources.objects import dig
from migrator.resources.scaling import REPLICAS_ANNOTATION, SCALABLE_KINDS, mounts_claims
from migrator.transform.base import Change
from migrator.transform.differences.base import Obj, remove_value, set_value
from migrator.transform.jsonpatch import join_pointer

BINDING_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)


@dataclass(frozen=True)
class MovedVolumeData:
    """See the module doc."""

    name: str = "differences.moveVolumeData"
    kinds: frozenset[tuple[str, str]] = frozenset({("", "PersistentVolumeClaim"), *SCALABLE_KINDS})

    def apply(self, obj: Obj) -> list[Change]:
        if obj.get("kind") == "PersistentVolumeClaim":
            return self._claim(obj)
        replicas = dig(obj, "spec", "replicas")
        if not mounts_claims(obj) or replicas == 0:
            return []
        held = 1 if replicas is None else int(replicas)
        annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
        changes = set_value(
            annotations,
            REPLICAS_ANNOTATION,
            str(held),
            join_pointer("metadata", "annotations", REPLICAS_ANNOTATION),
            self.name,
            "the replicas it runs with once its volumes' data is in the new cluster",
        )
        return changes + set_value(
            obj["spec"],
            "replicas",
            0,
            "/spec/replicas",
            self.name,
            "held at zero until its volumes' data is moved and checked",
        )

    def _claim(self, obj: Obj) -> list[Change]:
        changes: list[Change] = []
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("volumeName"):
            changes += remove_value(
                spec,
                "volumeName",
                "/spec/volumeName",
                self.name,
                "a new volume in the new cluster, filled by the volume mover",
            )
        annotations = dig(obj, "metadata", "annotations")
        if isinstance(annotations, dict):
            for key in BINDING_ANNOTATIONS:
                if key in annotations:
                    changes += remove_value(
                        annotations,
                        key,
                        join_pointer("metadata", "annotations", key),
                        self.name,
                        "the old cluster's binding of the claim",
                    )
        return changes

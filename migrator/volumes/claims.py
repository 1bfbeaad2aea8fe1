"""The claims a sync moves, and where they live in the old cluster.

The claims come from the snapshot (what was imported into the new cluster); the live old
cluster says which pods mount each one and on which node (a ReadWriteOnce volume in use can
be mounted there only), and which volume backs it (a PV of the EBS CSI driver or the in-tree
``awsElasticBlockStore`` can take the cloud-snapshot path instead of a mover).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster, iter_items
from migrator.resources.objects import dig, name_of, namespace_of
from migrator.snapshot import SnapshotReader

EBS_CSI_DRIVER = "ebs.csi.aws.com"
# The label of migrator's own mover pods (backup or restore): never the claim's users.
MOVER_LABEL = "migrator.io/mover"


@dataclass(frozen=True)
class Claim:
    """One PVC of the snapshot: ``volume`` is its name in the volume store (NS/PVC)."""

    namespace: str
    name: str

    @property
    def volume(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Placement:
    """What the old cluster says about a claim: the pods mounting it (by name), the node
    they run on, and its bound PV (None while unbound or when it could not be read)."""

    pods: list[str] = field(default_factory=list)
    node: str | None = None
    pv: dict[str, Any] | None = None


def claims_in_snapshot(reader: SnapshotReader, namespaces: Sequence[str] = ()) -> list[Claim]:
    """Every PVC the snapshot holds (in ``namespaces`` only, when given), sorted."""
    found: set[Claim] = set()
    for entry in reader.resources():
        if (entry["group"], entry["resource"]) != ("", "persistentvolumeclaims"):
            continue
        for obj in reader.iter_objects(entry):
            claim = Claim(namespace_of(obj), name_of(obj))
            if not namespaces or claim.namespace in namespaces:
                found.add(claim)
    return sorted(found, key=lambda c: (c.namespace, c.name))


def claim_of_volume(volume: Mapping[str, Any]) -> str | None:
    """The claim a pod's volume mounts, if it is a PVC volume."""
    return dig(volume, "persistentVolumeClaim", "claimName")


def pods_by_claim(cluster: Cluster, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The live pods of ``namespace`` (not finished) by each claim they mount; migrator's own
    movers (a failed one may linger) are not counted."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in iter_items(cluster, f"/api/v1/namespaces/{namespace}/pods"):
        if dig(pod, "status", "phase") in ("Succeeded", "Failed"):
            continue
        if MOVER_LABEL in (dig(pod, "metadata", "labels") or {}):
            continue
        for volume in dig(pod, "spec", "volumes") or ():
            claim = claim_of_volume(volume)
            if claim:
                found[claim].append(pod)
    return found


def place(cluster: Cluster, claims: Iterable[Claim]) -> dict[Claim, Placement]:
    """Where each claim is in ``cluster``: pods, node, PV (one pod list per namespace)."""
    by_namespace: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_namespace[claim.namespace].append(claim)
    placed: dict[Claim, Placement] = {}
    for namespace, members in by_namespace.items():
        pods = pods_by_claim(cluster, namespace)
        for claim in members:
            mounting = pods.get(claim.name, [])
            nodes = sorted({n for p in mounting if (n := dig(p, "spec", "nodeName"))})
            placed[claim] = Placement(
                pods=[name_of(p) for p in mounting],
                node=nodes[0] if nodes else None,
                pv=_bound_volume(cluster, claim),
            )
    return placed


def _bound_volume(cluster: Cluster, claim: Claim) -> dict[str, Any] | None:
    try:
        pvc = cluster.request(
            "GET", f"/api/v1/namespaces/{claim.namespace}/persistentvolumeclaims/{claim.name}"
        )
        name = dig(pvc, "spec", "volumeName")
        return cluster.request("GET", f"/api/v1/persistentvolumes/{name}") if name else None
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def ebs_volume_id(pv: Mapping[str, Any] | None) -> str | None:
    """The EBS volume id behind a PV (CSI driver or in-tree), else None.

    The in-tree form may be ``aws://us-east-1a/vol-...``: the id is the last part."""
    if not pv:
        return None
    csi = dig(pv, "spec", "csi") or {}
    if csi.get("driver") == EBS_CSI_DRIVER and csi.get("volumeHandle"):
        return str(csi["volumeHandle"])
    in_tree = dig(pv, "spec", "awsElasticBlockStore", "volumeID")
    if in_tree:
        return str(in_tree).rsplit("/", 1)[-1]
    return None

"""The EBS path: move a volume by cloud snapshot instead of copying its files.

For a PV backed by EBS (the CSI driver ``ebs.csi.aws.com`` or the in-tree
``awsElasticBlockStore``): snapshot the volume (boto3), wait until the snapshot completes,
create a volume from it in the target availability zone (zones mapped old → new; the same
zone when not mapped), wait until it is available, and create the PV in the new cluster,
bound to the imported claim: named as the claim's ``spec.volumeName`` when it has one (an
import keeps it, so the claim waits for exactly this PV), with a ``claimRef`` to the claim,
the old PV's class, capacity, access modes and file system, and node affinity to the zone.
The new PV always uses the CSI driver: in-tree EBS is gone from Kubernetes 1.27 on.

A stage pass only snapshots (EBS snapshots are incremental, so the final one then copies
only the blocks written since); a final pass snapshots, creates the volume and the PV. The
snapshot and the volume are tagged with the run and the claim (``migrator.io/volume``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from migrator.errors import ApiError, VolumeError
from migrator.kube import Cluster
from migrator.resources.objects import dig
from migrator.volumes.claims import EBS_CSI_DRIVER, Claim, Placement, ebs_volume_id
from migrator.volumes.sync import FINAL, VolumeResult

ZONE_LABEL = "topology.kubernetes.io/zone"
PV_ANNOTATION = "migrator.io/ebs-snapshot"


def _tags(run_id: str, claim: Claim) -> list[dict[str, str]]:
    return [
        {"Key": "migrator.io/run", "Value": run_id},
        {"Key": "migrator.io/volume", "Value": claim.volume},
    ]


def _spec(resource: str, run_id: str, claim: Claim) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": _tags(run_id, claim)}]


def new_volume_pv(
    old_pv: Mapping[str, Any],
    claim: Mapping[str, Any],
    volume_id: str,
    zone: str,
    snapshot_id: str,
) -> dict[str, Any]:
    """The PV for the new cluster: the new EBS volume, bound to ``claim`` (the imported
    PVC as the new cluster has it), pinned to ``zone``."""
    old_spec = old_pv.get("spec") or {}
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    fs_type = dig(old_spec, "csi", "fsType") or dig(old_spec, "awsElasticBlockStore", "fsType")
    csi: dict[str, Any] = {"driver": EBS_CSI_DRIVER, "volumeHandle": volume_id}
    if fs_type:
        csi["fsType"] = fs_type
    name = spec.get("volumeName") or f"migrator-{meta['namespace']}-{meta['name']}"[:253]
    pv_spec: dict[str, Any] = {
        "capacity": dict(old_spec.get("capacity") or {}),
        "accessModes": list(old_spec.get("accessModes") or spec.get("accessModes") or []),
        "volumeMode": old_spec.get("volumeMode") or "Filesystem",
        "persistentVolumeReclaimPolicy": old_spec.get("persistentVolumeReclaimPolicy") or "Retain",
        "csi": csi,
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
        },
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}
                ]
            }
        },
    }
    storage_class = spec.get("storageClassName", old_spec.get("storageClassName"))
    if storage_class is not None:
        pv_spec["storageClassName"] = storage_class
    if old_spec.get("mountOptions"):
        pv_spec["mountOptions"] = list(old_spec["mountOptions"])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {ZONE_LABEL: zone},
            "annotations": {PV_ANNOTATION: snapshot_id},
        },
        "spec": pv_spec,
    }


class EbsMover:
    """Moves EBS-backed claims with snapshots; ``ec2`` is a boto3 EC2 client of the region.

    ``zones`` maps old availability zones to new ones. ``delay`` is the waiters' poll
    interval (seconds); ``max_attempts`` bounds each wait."""

    def __init__(
        self,
        ec2: Any,
        new: Cluster,
        *,
        run_id: str,
        pass_kind: str,
        zones: Mapping[str, str] | None = None,
        delay: float = 15.0,
        max_attempts: int = 240,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ec2 = ec2
        self.new = new
        self.run_id = run_id
        self.pass_kind = pass_kind
        self.zones = dict(zones or {})
        self.waiter_config = {"Delay": delay, "MaxAttempts": max_attempts}
        self.clock = clock

    def __call__(self, claim: Claim, placement: Placement) -> VolumeResult:
        result = VolumeResult(claim, node=placement.node)
        volume_id = ebs_volume_id(placement.pv)
        if volume_id is None:
            result.error = "not an EBS volume (neither ebs.csi.aws.com nor awsElasticBlockStore)"
            return result
        started = self.clock()
        steps: dict[str, Any] = {"sourceVolume": volume_id}
        result.ebs = steps
        try:
            self._move(claim, placement, volume_id, steps)
        except VolumeError as exc:
            result.error = str(exc)
        steps["seconds"] = round(self.clock() - started, 3)
        return result

    def _move(
        self, claim: Claim, placement: Placement, volume_id: str, steps: dict[str, Any]
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        try:
            source = self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
            snapshot = self.ec2.create_snapshot(
                VolumeId=volume_id,
                Description=f"migrator {self.pass_kind} pass of {claim.volume}",
                TagSpecifications=_spec("snapshot", self.run_id, claim),
            )
            steps["snapshot"] = snapshot["SnapshotId"]
            self.ec2.get_waiter("snapshot_completed").wait(
                SnapshotIds=[snapshot["SnapshotId"]], WaiterConfig=self.waiter_config
            )
            if self.pass_kind != FINAL:
                return
            zone = self.zones.get(source["AvailabilityZone"], source["AvailabilityZone"])
            create: dict[str, Any] = {
                "SnapshotId": snapshot["SnapshotId"],
                "AvailabilityZone": zone,
                "VolumeType": source.get("VolumeType") or "gp3",
                "TagSpecifications": _spec("volume", self.run_id, claim),
            }
            for key in ("Iops", "Throughput"):
                if source.get(key) and create["VolumeType"] in ("gp3", "io1", "io2"):
                    create[key] = source[key]
            if source.get("Encrypted") and source.get("KmsKeyId"):
                create["Encrypted"], create["KmsKeyId"] = True, source["KmsKeyId"]
            volume = self.ec2.create_volume(**create)
            steps["volume"], steps["zone"] = volume["VolumeId"], zone
            self.ec2.get_waiter("volume_available").wait(
                VolumeIds=[volume["VolumeId"]], WaiterConfig=self.waiter_config
            )
        except (ClientError, BotoCoreError, WaiterError) as exc:
            raise VolumeError(f"EBS: {exc}") from exc
        path = f"/api/v1/namespaces/{claim.namespace}/persistentvolumeclaims/{claim.name}"
        try:
            new_claim = self.new.request("GET", path)
        except ApiError as exc:
            raise VolumeError(f"the imported claim in the new cluster: {exc}") from exc
        pv = new_volume_pv(
            placement.pv or {}, new_claim, volume["VolumeId"], zone, steps["snapshot"]
        )
        try:
            self.new.request("POST", "/api/v1/persistentvolumes", body=pv)
        except ApiError as exc:
            raise VolumeError(f"cannot create PV {pv['metadata']['name']}: {exc}") from exc
        steps["pv"] = pv["metadata"]["name"]

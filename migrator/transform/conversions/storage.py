"""storage.k8s.io/v1beta1 → v1: StorageClass, VolumeAttachment, CSIDriver, CSINode and
CSIStorageCapacity have the same fields and the same defaults in both versions (the kinds
left v1beta1 in different releases: see ``migrator.kube.removals``)."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed(
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    ("StorageClass", "VolumeAttachment", "CSIDriver", "CSINode", "CSIStorageCapacity"),
)

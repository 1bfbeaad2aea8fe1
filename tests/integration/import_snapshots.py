"""Snapshots written object by object for the import tests, and cleanup of what they create."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster
from migrator.snapshot import SnapshotWriter
from migrator.store.base import Store

# (group, version, resource, kind, namespaced)
NAMESPACES = ("", "v1", "namespaces", "Namespace", False)
CONFIGMAPS = ("", "v1", "configmaps", "ConfigMap", True)
SECRETS = ("", "v1", "secrets", "Secret", True)
DEPLOYMENTS = ("apps", "v1", "deployments", "Deployment", True)
SERVICES = ("", "v1", "services", "Service", True)
PVS = ("", "v1", "persistentvolumes", "PersistentVolume", False)
PVCS = ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
        False)
WEBHOOKS = ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration", False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Contents:
    """Objects per type (and status set aside per type) for :func:`write_snapshot`."""

    objects: dict[tuple[str, str, str, str, bool], list[dict[str, Any]]] = field(
        default_factory=dict)
    aside: dict[tuple[str, str, str, str, bool], list[dict[str, Any]]] = field(
        default_factory=dict)

    def add(self, rtype: tuple[str, str, str, str, bool], obj: dict[str, Any],
            status: dict[str, Any] | None = None) -> None:
        self.objects.setdefault(rtype, []).append(obj)
        if status is not None:
            meta = obj["metadata"]
            self.aside.setdefault(rtype, []).append(
                {"namespace": meta.get("namespace"), "name": meta["name"], "status": status})


def write_snapshot(store: Store, snapshot_id: str, contents: Contents,
                   part_max_objects: int = 5000) -> None:
    writer = SnapshotWriter(store, snapshot_id, part_max_objects=part_max_objects)
    for rtype, objects in contents.objects.items():
        statuses = {a["name"]: {"status": a["status"]} for a in contents.aside.get(rtype, [])}
        with writer.resource(*rtype) as resource:
            for obj in objects:
                resource.write(obj, statuses.get(obj["metadata"]["name"]))
    writer.commit()


def configmap(namespace: str, name: str, data: dict[str, str] | None = None,
              owners: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owners:
        meta["ownerReferences"] = list(owners)
    return {"metadata": meta, "data": data or {"key": name}}


def owner_ref(api_version: str, kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name,
            "uid": str(uuid.uuid4()), "controller": True, "blockOwnerDeletion": True}


def delete_quietly(cluster: Cluster, path: str) -> None:
    try:
        cluster.request("DELETE", path)
    except ApiError as exc:
        if exc.status != 404:
            raise

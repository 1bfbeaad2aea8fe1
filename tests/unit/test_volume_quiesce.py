"""Quiesce decisions without servers: when a pod counts as stopped, which container a hook
runs in, and which workload owns a pod."""
from __future__ import annotations

from migrator.volumes.quiesce import pod_stopped, mounting_container, owner_workload


def _pod(deleting: bool, *states: str) -> dict:
    meta = {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {"name": "p"}
    return {"metadata": meta,
            "status": {"containerStatuses": [{"state": {state: {}}} for state in states]}}


def test_a_pod_is_stopped_once_it_is_being_deleted_and_every_container_has_ended() -> None:
    assert pod_stopped(_pod(True, "terminated", "terminated"))
    assert not pod_stopped(_pod(True, "terminated", "running"))  # one still writes
    assert not pod_stopped(_pod(False, "terminated"))  # not being deleted: it may restart
    assert not pod_stopped(_pod(True))  # no status yet: nothing known


def test_the_hook_runs_in_the_container_that_mounts_the_claim() -> None:
    pod = {"spec": {
        "volumes": [{"name": "cache", "emptyDir": {}},
                    {"name": "db", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
        "containers": [{"name": "exporter", "volumeMounts": [{"name": "cache", "mountPath": "/c"}]},
                       {"name": "postgres", "volumeMounts": [{"name": "db", "mountPath": "/var/lib/pg"}]}]}}
    assert mounting_container(pod, "data-db-0") == "postgres"
    assert mounting_container(pod, "other") == "exporter"  # none mounts it: the first


class Owners:
    """ReplicaSets by name, as an API server would answer."""

    def __init__(self, replicasets: dict[str, dict]) -> None:
        self.replicasets = replicasets

    def request(self, method: str, path: str, **kw) -> dict:
        return self.replicasets[path.rsplit("/", 1)[1]]


def _owned(kind: str, name: str, api_version: str = "apps/v1") -> dict:
    return {"metadata": {"ownerReferences": [
        {"apiVersion": api_version, "kind": kind, "name": name, "controller": True}]}}


def test_a_pod_is_traced_to_the_workload_that_scales_it() -> None:
    cluster = Owners({"web-5d9": _owned("Deployment", "web"), "bare-rs": {"metadata": {}}})
    deployment = owner_workload(cluster, "shop", _owned("ReplicaSet", "web-5d9"))
    assert (deployment.kind, deployment.name, deployment.path) == (
        "Deployment", "web", "/apis/apps/v1/namespaces/shop/deployments/web")
    sts = owner_workload(cluster, "shop", _owned("StatefulSet", "db"))
    assert sts.path == "/apis/apps/v1/namespaces/shop/statefulsets/db"
    rc = owner_workload(cluster, "shop", _owned("ReplicationController", "old", "v1"))
    assert rc.path == "/api/v1/namespaces/shop/replicationcontrollers/old"
    bare_rs = owner_workload(cluster, "shop", _owned("ReplicaSet", "bare-rs"))
    assert bare_rs.path == "/apis/apps/v1/namespaces/shop/replicasets/bare-rs"
    assert owner_workload(cluster, "shop", _owned("DaemonSet", "agent")) is None
    assert owner_workload(cluster, "shop", {"metadata": {}}) is None

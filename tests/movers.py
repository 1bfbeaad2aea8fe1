"""What the volume-sync tests share: claims on the real nodes, workloads that write into them,
and the settings that make mover Jobs run on the proving ground (its locally built mover
image, MinIO as the pods see it).

``from tests.movers import ...`` (integration and e2e tests).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from migrator.kube.retry import RetryPolicy
from migrator.volumes import jobs
from tests.waiting import wait_until

FAST_BACKOFF = RetryPolicy(base_delay=0.5, max_delay=1.0, jitter=lambda: 0.0)


def make_claim(api, namespace: str, name: str, storage_class: str, size: str = "64Mi") -> None:
    api.request("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", body={
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": size}}}})


def claim_directory(api, namespace: str, name: str, timeout: float = 30) -> Path:
    """The host directory of a bound claim of the proving ground's local-path class."""
    def bound() -> dict | None:
        claim = api.request("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
        return claim if claim.get("status", {}).get("phase") == "Bound" else None

    claim = wait_until(f"claim {namespace}/{name} Bound", bound, timeout=timeout, interval=0.3)
    pv = api.request("GET", f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    return Path(pv["spec"]["local"]["path"])


def sleeper_spec(node, claim: str, script: str = "sleep 3600") -> dict[str, Any]:
    """A pod spec on ``node`` mounting ``claim`` at /data and running ``script``."""
    return {"containers": [{"name": "app", "image": node.images["busybox"], "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            "terminationGracePeriodSeconds": 1, **node.placement()}


def deployment(name: str, spec: dict, replicas: int = 1) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def running_pods(api, namespace: str, selector: str) -> list[dict]:
    pods = api.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                       query={"labelSelector": selector})["items"]
    return [p for p in pods if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]


def settings(real_nodes, s3, run_id: str | None = None, deadline: int = 600) -> jobs.MoverSettings:
    run_id = run_id or jobs.new_run_id()
    return jobs.MoverSettings(run_id=run_id, image=real_nodes["old"].images["mover"],
                              store_url=f"s3://{s3.bucket}", secret_name=jobs.SECRET_PREFIX + run_id,
                              pull_policy="Never", deadline=deadline, workers=2)


def credentials(real_nodes, s3) -> jobs.StoreCredentials:
    """The store's credentials as the pods use them (MinIO at the host's address on the node
    network: both nodes reach the same)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id=s3.access_key,
                                    aws_secret_access_key=s3.secret_key, region_name=s3.region)
    return jobs.store_credentials(real_nodes["old"].s3_endpoint, s3.region, None, session=session)


class Recording:
    """A Cluster that records what mover runs create and the pods they ran: forwards every
    call to the real one."""

    def __init__(self, cluster) -> None:
        self._cluster = cluster
        self.created: list[dict] = []
        self.pods: dict[str, dict] = {}  # job name -> its pod as last listed

    def __getattr__(self, name: str):
        return getattr(self._cluster, name)

    def request(self, method: str, path: str, **kw):
        result = self._cluster.request(method, path, **kw)
        if method == "POST" and isinstance(kw.get("body"), dict):
            self.created.append(kw["body"])
        selector = (kw.get("query") or {}).get("labelSelector", "") if isinstance(kw.get("query"), dict) else ""
        if method == "GET" and path.endswith("/pods") and selector.startswith("job-name="):
            for pod in result.get("items", []):
                self.pods[selector.removeprefix("job-name=")] = pod
        return result

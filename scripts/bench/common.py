"""What the benchmarks share: the bench objects, raw HTTP access, removing bench namespaces.

The bench population is mostly ~1 KiB ConfigMaps in 50 namespaces plus Secrets, Services and
Deployments with no replicas (:func:`plan`, :func:`body`). The limit each benchmark compares
migrator with is plain HTTP through urllib3 with the kubeconfig's admin client certificate
(:func:`raw_pool`), with no client library in between.
"""
from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import urllib3
import yaml

from migrator.errors import ApiError
from migrator.kube import Cluster

LABEL = {"bench": "migrator"}
SELECTOR = "bench=migrator"
NAMESPACES = 50
# Shares of the population; ConfigMaps take the rest.
MIX = {"secrets": 0.06, "services": 0.03, "deployments": 0.03}
PAYLOAD = "x" * 900  # with metadata, a ConfigMap of about 1 KiB


def plan(total: int) -> dict[str, int]:
    """How many objects of each kind make ``total``."""
    counts = {kind: int(total * share) for kind, share in MIX.items()}
    counts["configmaps"] = total - sum(counts.values())
    return counts


def body(kind: str, name: str, namespace: str) -> tuple[str, dict[str, Any]]:
    """(API prefix, object) of one bench object of ``kind`` (plural)."""
    meta = {"name": name, "namespace": namespace, "labels": dict(LABEL)}
    if kind == "configmaps":
        return "/api/v1", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                           "data": {"payload": PAYLOAD}}
    if kind == "secrets":
        return "/api/v1", {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                           "data": {"token": base64.b64encode(os.urandom(256)).decode()}}
    if kind == "services":
        return "/api/v1", {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
            "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
    labels = {"app": name}
    return "/apis/apps/v1", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                             "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                                      "template": {"metadata": {"labels": labels}, "spec": {
                                          "containers": [{"name": "app",
                                                          "image": "registry.example/a:1"}]}}}}


def raw_pool(kubeconfig: str, context: str, maxsize: int, tmp: Path,
             ) -> tuple[str, urllib3.PoolManager]:
    """The server URL of ``context`` and a urllib3 pool holding its admin client certificate.

    The certificate, key and CA are written to files in ``tmp`` (urllib3 reads files).
    """
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    files = {}
    for name, key in (("ca", cluster["certificate-authority-data"]),
                      ("cert", user["client-certificate-data"]),
                      ("key", user["client-key-data"])):
        files[name] = tmp / f"{context}-{name}.pem"
        files[name].write_bytes(base64.b64decode(key))
    pool = urllib3.PoolManager(maxsize=maxsize, ca_certs=str(files["ca"]),
                               cert_file=str(files["cert"]), key_file=str(files["key"]))
    return cluster["server"].rstrip("/"), pool


def delete_namespaces(cluster: Cluster, names: Iterable[str], *, wait: float = 0.0) -> float:
    """Delete the namespaces (their objects go with them); with ``wait``, wait (up to that
    many seconds) until they are gone, so the next run starts from an empty cluster.

    Returns the seconds spent; raises TimeoutError if some are still there after ``wait``.
    """
    started = time.monotonic()
    names = list(names)
    for name in names:
        try:
            cluster.request("DELETE", f"/api/v1/namespaces/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
    while wait:
        left = [n for n in names if _exists(cluster, f"/api/v1/namespaces/{n}")]
        if not left:
            break
        if time.monotonic() - started > wait:
            raise TimeoutError(f"namespaces still there after {wait:.0f}s: {left[:5]}...")
        time.sleep(1.0)
    return time.monotonic() - started


def _exists(cluster: Cluster, path: str) -> bool:
    try:
        cluster.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True

"""A local-path provisioner for a real node: PVCs of the proving ground's StorageClass become
real directories.

For every Pending claim of the StorageClass it makes a directory under the node's volumes
directory and a ``local`` PersistentVolume bound to the claim and pinned to the real node,
so a pod that mounts the claim reads and writes those bytes, and a test on the host can fill
or read the same directory. A released volume (its claim deleted; reclaim policy Delete) has
its directory and its PV deleted.

    python -m proving_ground.provisioner --server URL --pki DIR --node NAME --volumes DIR
"""
from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

from . import config
from .ground import _ssl_context

ANNOTATION = "pv.kubernetes.io/provisioned-by"


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


def _volume(pvc: dict, node: str, path: Path, reclaim: str) -> dict:
    meta, spec = pvc["metadata"], pvc["spec"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {ANNOTATION: config.PROVISIONER},
                     "labels": {config.REAL_NODE_LABEL: "true"}},
        "spec": {
            "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": config.STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
            "local": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


class HttpError(Exception):
    def __init__(self, code: int, body: bytes) -> None:
        super().__init__(f"HTTP {code}: {body[:300]!r}")
        self.code = code


class Api:
    """Admin calls over one kept-alive TLS connection: a pass every half second costs
    requests, not handshakes."""

    def __init__(self, server: str, pki: Path) -> None:
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port
        self.context = _ssl_context(pki)
        self.conn: http.client.HTTPSConnection | None = None

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                        timeout=30)
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status >= 300:
                raise HttpError(resp.status, data)
            return json.loads(data or b"{}")
        raise AssertionError("unreachable")


def sync(api: Api, node: str, volumes: Path) -> None:
    """One pass: provision what is pending, delete what was released."""
    sc = api("GET", f"/apis/storage.k8s.io/v1/storageclasses/{config.STORAGE_CLASS}")
    reclaim = sc.get("reclaimPolicy", "Delete")
    for pvc in api("GET", "/api/v1/persistentvolumeclaims")["items"]:
        meta, spec = pvc["metadata"], pvc["spec"]
        if (spec.get("storageClassName") != config.STORAGE_CLASS or spec.get("volumeName")
                or meta.get("deletionTimestamp") or pvc.get("status", {}).get("phase") != "Pending"):
            continue
        if spec.get("volumeMode", "Filesystem") != "Filesystem":
            continue  # a block device is not something a directory can be
        path = volumes / f"pvc-{meta['uid']}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # pods of any user may write
        try:
            api("POST", "/api/v1/persistentvolumes", _volume(pvc, node, path, reclaim))
        except HttpError as exc:
            if exc.code != 409:
                raise
            continue
        _log(f"provisioned {path.name} for {meta['namespace']}/{meta['name']}")
    for pv in api("GET", "/api/v1/persistentvolumes")["items"]:
        meta, spec = pv["metadata"], pv["spec"]
        if (meta.get("annotations", {}).get(ANNOTATION) != config.PROVISIONER
                or spec.get("persistentVolumeReclaimPolicy") != "Delete"
                or pv.get("status", {}).get("phase") not in ("Released", "Failed")):
            continue
        path = Path(spec.get("local", {}).get("path", ""))
        if path.parent == volumes:
            shutil.rmtree(path, ignore_errors=True)
        try:
            api("DELETE", f"/api/v1/persistentvolumes/{meta['name']}")
        except HttpError as exc:
            if exc.code != 404:
                raise
        _log(f"deleted {meta['name']} (released)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--pki", required=True, type=Path)
    parser.add_argument("--node", required=True)
    parser.add_argument("--volumes", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    args.volumes.mkdir(parents=True, exist_ok=True)
    _log(f"provisioning {config.STORAGE_CLASS} volumes on {args.node} under {args.volumes}")
    api = Api(args.server, args.pki)
    while True:
        try:
            sync(api, args.node, args.volumes)
        except Exception as exc:  # noqa: BLE001 - a failed pass is logged and retried
            _log(f"pass failed: {exc!r}")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())

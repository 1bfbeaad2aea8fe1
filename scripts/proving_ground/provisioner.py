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
import shutil
import sys
import time
import urllib.error
from pathlib import Path

from . import config
from .ground import kube_call

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


def sync(server: str, pki: Path, node: str, volumes: Path) -> None:
    """One pass: provision what is pending, delete what was released."""
    sc = kube_call(server, pki, "GET", f"/apis/storage.k8s.io/v1/storageclasses/{config.STORAGE_CLASS}")
    reclaim = sc.get("reclaimPolicy", "Delete")
    for pvc in kube_call(server, pki, "GET", "/api/v1/persistentvolumeclaims")["items"]:
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
            kube_call(server, pki, "POST", "/api/v1/persistentvolumes", _volume(pvc, node, path, reclaim))
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
            continue
        _log(f"provisioned {path.name} for {meta['namespace']}/{meta['name']}")
    for pv in kube_call(server, pki, "GET", "/api/v1/persistentvolumes")["items"]:
        meta, spec = pv["metadata"], pv["spec"]
        if (meta.get("annotations", {}).get(ANNOTATION) != config.PROVISIONER
                or spec.get("persistentVolumeReclaimPolicy") != "Delete"
                or pv.get("status", {}).get("phase") not in ("Released", "Failed")):
            continue
        path = Path(spec.get("local", {}).get("path", ""))
        if path.parent == volumes:
            shutil.rmtree(path, ignore_errors=True)
        try:
            kube_call(server, pki, "DELETE", f"/api/v1/persistentvolumes/{meta['name']}")
        except urllib.error.HTTPError as exc:
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
    while True:
        try:
            sync(args.server, args.pki, args.node, args.volumes)
        except Exception as exc:  # noqa: BLE001 - a failed pass is logged and retried
            _log(f"pass failed: {exc!r}")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())

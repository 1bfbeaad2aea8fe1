"""Velero beside the proving ground: its CRDs, a BackupStorageLocation on MinIO, and its server
run as a local process against one cluster (out of cluster, no node agent), plus the CLI.

One :class:`Velero` per cluster. The server of the cluster that is backed up writes to the
store (``accessMode: ReadWrite``); the other reads the same bucket and prefix
(``ReadOnly``) and syncs the backups it finds there every second, so a backup made in one
cluster can be restored in the other, as users migrate with Velero.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from velero_build import VELERO_VERSION

from migrator.errors import ApiError
from migrator.kube import Cluster, connect

NAMESPACE = "velero"
BSL = "default"
SECRET = "cloud-credentials"
GROUP = "/apis/velero.io/v1"


@dataclass(frozen=True)
class Store:
    """The S3 endpoint and bucket both tools write to (the proving ground's MinIO)."""

    endpoint: str
    bucket: str
    region: str
    access_key: str
    secret_key: str

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Store:
        s3 = state["s3"]
        return cls(s3["endpoint"], s3["bucket"], s3["region"], s3["access_key"], s3["secret_key"])

    def env(self) -> dict[str, str]:
        """AWS_* variables for a command that reads or writes the store."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.endpoint}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _create(cluster: Cluster, path: str, body: dict[str, Any]) -> None:
    """POST ``body``; if it exists, replace it (PUT with its resourceVersion)."""
    try:
        cluster.request("POST", path, body=body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        url = f"{path}/{body['metadata']['name']}"
        current = cluster.request("GET", url)
        body = {**body, "metadata": {**body["metadata"],
                                     "resourceVersion": current["metadata"]["resourceVersion"]}}
        cluster.request("PUT", url, body=body)


@dataclass
class Velero:
    """Velero's server and CLI for one context of the proving ground's kubeconfig."""

    bin_dir: Path
    kubeconfig: str
    context: str
    store: Store
    prefix: str
    work: Path
    read_only: bool = False
    server: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def cluster(self) -> Cluster:
        return connect(self.kubeconfig, self.context)

    @property
    def log(self) -> Path:
        return self.work / "server.log"

    def command(self, *args: str) -> list[str]:
        """The CLI's command line for ``args`` against this cluster."""
        return [str(self.bin_dir / "velero"), *args, "--kubeconfig", self.kubeconfig,
                "--kubecontext", self.context, "--namespace", NAMESPACE]

    def env(self) -> dict[str, str]:
        """The environment of the server and the CLI: a HOME of their own (no client config
        is shared) and a TMPDIR (the server keeps credentials and plugin sockets there)."""
        home, tmp = self.work / "home", self.work / "tmp"
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}

    def install(self) -> None:
        """CRDs (``velero install --crds-only``), the namespace, the credentials Secret and the
        BackupStorageLocation on MinIO."""
        subprocess.run(self.command("install", "--crds-only"), env=self.env(), check=True,
                       capture_output=True, timeout=300)
        cluster = self.cluster
        _create(cluster, "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        cloud = (f"[default]\naws_access_key_id={self.store.access_key}\n"
                 f"aws_secret_access_key={self.store.secret_key}\n")
        _create(cluster, f"/api/v1/namespaces/{NAMESPACE}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET},
            "stringData": {"cloud": cloud}})
        # Every restore starts by reading the server's own Deployment (velero/velero, for the
        # image of the restore helper it adds to pods with volume backups) and fails at once
        # without it ("deployments.apps \"velero\" not found"): out of cluster there is none,
        # so a stand-in with no replicas names the image.
        labels = {"component": "velero"}
        _create(cluster, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "velero", "namespace": NAMESPACE},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [{
                    "name": "velero", "image": f"velero/velero:{VELERO_VERSION}"}]}}}})
        _create(cluster, f"{GROUP}/namespaces/{NAMESPACE}/backupstoragelocations", {
            "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": BSL, "namespace": NAMESPACE},
            "spec": {
                "provider": "aws", "default": True,
                "accessMode": "ReadOnly" if self.read_only else "ReadWrite",
                # the reader syncs the writer's backups at once; the writer has nothing to sync
                "backupSyncPeriod": "1s" if self.read_only else "1h",
                "objectStorage": {"bucket": self.store.bucket, "prefix": self.prefix},
                "credential": {"name": SECRET, "key": "cloud"},
                "config": {"region": self.store.region, "s3ForcePathStyle": "true",
                           "s3Url": self.store.endpoint}}})

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until its storage location is Available."""
        self.work.mkdir(parents=True, exist_ok=True)
        args = self.command(
            "server", "--plugin-dir", str(self.bin_dir / "plugins"),
            "--metrics-address", f"127.0.0.1:{_free_port()}", "--profiler-address", "",
            "--store-validation-frequency", "10s", "--log-format", "json")
        with self.log.open("ab") as sink:
            self.server = subprocess.Popen(args, env=self.env(), stdout=sink,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        path = f"{GROUP}/namespaces/{NAMESPACE}/backupstoragelocations/{BSL}"
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"velero server ({self.context}) exited with "
                                   f"{self.server.returncode}:\n{self.log_tail()}")
            phase = (self.cluster.request("GET", path).get("status") or {}).get("phase")
            if phase == "Available":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"BackupStorageLocation in {self.context} is {phase!r} after "
                                   f"{timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(1.0)

    def stop(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        self.server.terminate()
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) \
            if self.log.exists() else ""

    def errors_in_log(self, since: int = 0) -> list[str]:
        """Messages of the server's error-level log lines, from byte offset ``since``."""
        found = []
        with self.log.open("rb") as log:
            log.seek(since)
            for line in log:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") == "error":
                    found.append(f"{entry.get('msg')}: {entry.get('error', '')}".strip(": "))
        return found

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.cluster.request("GET", f"{GROUP}/namespaces/{NAMESPACE}/{kind}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def wait_for_backup(self, name: str, timeout: float = 300.0) -> None:
        """Wait until the server has synced backup ``name`` from the store."""
        deadline = time.monotonic() + timeout
        while (backup := self.get("backups", name)) is None or \
                (backup.get("status") or {}).get("phase") != "Completed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"backup {name} not synced into {self.context}: {backup}")
            time.sleep(0.5)

"""Velero benchmark: Velero backup/restore vs migrator export/import, same clusters, same store.

For each size N (``--sizes 5000,20000``) the proving ground's old cluster (1.21) holds the
export benchmark's estate (N objects labelled ``bench=migrator`` in 50 namespaces, see
``common.py``) plus a small fidelity namespace (``bench-fidelity``, also labelled) with what
migrations lose: an object owned by another, a Service with a fixed cluster IP, a claim
bound to its volume, a HorizontalPodAutoscaler with two metrics, objects at versions the new
cluster no longer serves (FlowSchema and PriorityLevelConfiguration at
``flowcontrol.apiserver.k8s.io/v1beta1``, CSIStorageCapacity at ``storage.k8s.io/v1beta1``,
a PodSecurityPolicy) and an Ingress made through ``extensions/v1beta1``.

Velero (v1.18.3 and its AWS plugin, built from Go modules on first use, see
``velero_build.py``) runs as two local servers, one per cluster, out of cluster, with no node
agent, both on the proving ground's MinIO (same bucket as migrator). Then, ``--rounds``
times, in alternating order:

a. ``velero backup create --selector bench=migrator --snapshot-volumes=false --wait`` on old
   vs ``migrator export --from old --to new -l bench=migrator`` to ``s3://BUCKET/velero-bench``;
b. ``migrator transform`` of that snapshot for new (timed apart);
c. ``velero restore create --from-backup ... --wait`` into new vs ``migrator import``, the
   bench namespaces and cluster-scoped fixtures of new deleted (and waited for) before each;
   after each, on new: the labelled objects per type, ``migrator verify`` of migrator's
   transformed snapshot against what the tool brought over, and the fixture's checks.

Measured: wall time (objects/s = the objects migrator exports, the same estate for both
tools), CPU of the tool (migrator's command and its workers; Velero's CLI plus its server and
plugin processes during the operation), CPU of the cluster (its kube-apiserver and etcd),
and peak memory (resident set, summed over the process tree, sampled every 20 ms).

    .venv/bin/python scripts/bench/velero_bench.py --sizes 5000,20000 --rounds 3 [--json]
    .venv/bin/python scripts/bench/velero_bench.py --sizes 50000 --rounds 1
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from common import LABEL, NAMESPACES, SELECTOR, delete_namespaces  # noqa: E402
from export_bench import populate, tree_rss  # noqa: E402
from velero_build import build_velero  # noqa: E402
from velero_server import Store, Velero  # noqa: E402

from migrator.errors import ApiError  # noqa: E402
from migrator.kube import Cluster, connect, discover, iter_items  # noqa: E402

PREFIX = "velero-bench"  # migrator's snapshots; Velero's backups under PREFIX-velero
FIDELITY_NS = "bench-fidelity"
Obj = dict[str, Any]


# -- measuring ---------------------------------------------------------------------------------


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """CPU seconds of process ``pid`` (with its reaped children), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 (1-based); fields[0] is field 3
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / _ticks()


def tree_pids(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant (the dead ones are in cutime)."""
    return sum(cpu_seconds(p) for p in tree_pids(pid))


class PeakSampler:
    """Peak summed RSS of process trees, sampled every 20 ms in a thread while in use."""

    def __init__(self, **roots: int) -> None:
        self.roots = roots
        self.peaks = {name: 0 for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.roots.items():
                self.peaks[name] = max(self.peaks[name], tree_rss(pid))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mb(self, name: str) -> float:
        return round(self.peaks[name] / 2**20, 1)


@dataclass
class Run:
    """One timed operation of either tool."""

    tool: str
    op: str
    seconds: float
    tool_cpu: float  # migrator: the command; Velero: CLI + server (+ plugins)
    cluster_cpu: float  # the cluster's kube-apiserver and etcd
    peak_mb: float  # migrator: the command; Velero: the server and its plugins
    client_peak_mb: float = 0.0  # Velero's CLI
    server_cpu: float = 0.0  # Velero: the server and its plugins (part of tool_cpu)
    items: int = 0  # objects the tool says it handled
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "op": self.op, "seconds": round(self.seconds, 2),
                "tool_cpu_s": round(self.tool_cpu, 2), "server_cpu_s": round(self.server_cpu, 2),
                "cluster_cpu_s": round(self.cluster_cpu, 2),
                "peak_mb": self.peak_mb, "client_peak_mb": self.client_peak_mb,
                "items": self.items, **self.detail}


class Ground:
    """The running proving ground: kubeconfig, store, and the pids of each cluster's servers."""

    def __init__(self, state_file: Path) -> None:
        self.state = json.loads(state_file.read_text())
        self.kubeconfig: str = self.state["kubeconfig"]
        self.store = Store.from_state(self.state)
        self.pids = {p["name"]: p["pid"] for p in self.state["processes"]}

    def cluster_cpu(self, context: str) -> float:
        return sum(cpu_seconds(self.pids[f"{context}-{name}"], children=False)
                   for name in ("kube-apiserver", "etcd"))

    def cluster(self, context: str) -> Cluster:
        return connect(self.kubeconfig, context, pool_size=24)


def timed(cmd: list[str], ground: Ground, context: str, *, env: dict[str, str] | None = None,
          server_pid: int | None = None) -> tuple[subprocess.CompletedProcess[bytes], Run]:
    """Run ``cmd``; its wall time, CPU (and the server's, if any), the cluster's, peak RSS."""
    cluster0, server0 = ground.cluster_cpu(context), tree_cpu(server_pid) if server_pid else 0.0
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    roots = {"client": proc.pid, **({"server": server_pid} if server_pid else {})}
    with PeakSampler(**roots) as sampler:
        out_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        err = proc.stderr.read()  # type: ignore[union-attr]
        _pid, status, usage = os.wait4(proc.pid, 0)
        reader.join()
    seconds = time.monotonic() - started
    client_cpu = usage.ru_utime + usage.ru_stime
    server_cpu = tree_cpu(server_pid) - server0 if server_pid else 0.0
    done = subprocess.CompletedProcess(cmd, os.waitstatus_to_exitcode(status),
                                       b"".join(out_chunks), err)
    run = Run(tool="", op="", seconds=seconds, tool_cpu=client_cpu + server_cpu,
              cluster_cpu=ground.cluster_cpu(context) - cluster0,
              peak_mb=sampler.mb("server") if server_pid else sampler.mb("client"),
              client_peak_mb=sampler.mb("client") if server_pid else 0.0, server_cpu=server_cpu)
    return done, run


# -- the fidelity fixture ----------------------------------------------------------------------


def _labelled(obj: Obj) -> Obj:
    obj["metadata"].setdefault("labels", {}).update(LABEL)
    return obj


def fixture() -> list[tuple[str, Obj]]:
    """(collection path, object) of the fidelity objects, in creation order."""
    ns = FIDELITY_NS
    meta = {"namespace": ns}
    labels = {"app": "owner"}
    return [(path, _labelled(obj)) for path, obj in [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": ns}}),
        (f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "owner", **meta},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/a:1"}]}}}}),
        # the owned ConfigMap is created once the owner's uid is known (see add_fixture)
        (f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "fixed-ip", **meta},
            "spec": {"clusterIP": "10.96.200.10", "selector": labels,
                     "ports": [{"port": 80, "targetPort": 8080}]}}),
        ("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "bench-fidelity-pv"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "bench-manual",
                     "hostPath": {"path": "/tmp/bench-fidelity-pv"},
                     "claimRef": {"namespace": ns, "name": "data"}}}),
        (f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", **meta},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "bench-manual",
                     "volumeName": "bench-fidelity-pv",
                     "resources": {"requests": {"storage": "1Gi"}}}}),
        (f"/apis/autoscaling/v2beta2/namespaces/{ns}/horizontalpodautoscalers", {
            "apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "owner", **meta},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "owner"},
                     "minReplicas": 1, "maxReplicas": 3, "metrics": [
                         {"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": 60}}},
                         {"type": "Resource", "resource": {"name": "memory", "target": {
                             "type": "AverageValue", "averageValue": "100Mi"}}}]}}),
        (f"/apis/storage.k8s.io/v1beta1/namespaces/{ns}/csistoragecapacities", {
            "apiVersion": "storage.k8s.io/v1beta1", "kind": "CSIStorageCapacity",
            "metadata": {"name": "capacity", **meta},
            "storageClassName": "bench-manual", "capacity": "10Gi"}),
        ("/apis/flowcontrol.apiserver.k8s.io/v1beta1/prioritylevelconfigurations", {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1",
            "kind": "PriorityLevelConfiguration", "metadata": {"name": "bench-plc"},
            "spec": {"type": "Limited", "limited": {
                "assuredConcurrencyShares": 5, "limitResponse": {"type": "Reject"}}}}),
        ("/apis/flowcontrol.apiserver.k8s.io/v1beta1/flowschemas", {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1", "kind": "FlowSchema",
            "metadata": {"name": "bench-fs"},
            "spec": {"priorityLevelConfiguration": {"name": "bench-plc"},
                     "matchingPrecedence": 9000, "rules": [{
                         "subjects": [{"kind": "User", "user": {"name": "bench-user"}}],
                         "resourceRules": [{"verbs": ["get"], "apiGroups": [""],
                                            "resources": ["configmaps"],
                                            "namespaces": ["*"]}]}]}}),
        ("/apis/policy/v1beta1/podsecuritypolicies", {
            "apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
            "metadata": {"name": "bench-psp"},
            "spec": {"seLinux": {"rule": "RunAsAny"}, "runAsUser": {"rule": "RunAsAny"},
                     "supplementalGroups": {"rule": "RunAsAny"}, "fsGroup": {"rule": "RunAsAny"},
                     "volumes": ["configMap"]}}),
        (f"/apis/extensions/v1beta1/namespaces/{ns}/ingresses", {
            "apiVersion": "extensions/v1beta1", "kind": "Ingress",
            "metadata": {"name": "web", **meta},
            "spec": {"rules": [{"host": "web.example", "http": {"paths": [{
                "path": "/", "backend": {"serviceName": "fixed-ip", "servicePort": 80}}]}}]}}),
    ]]


# What the fixture's cluster-scoped objects are, to remove them from new between runs.
CLUSTER_FIXTURES = [
    "/api/v1/persistentvolumes/bench-fidelity-pv",
    "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/bench-fs",
    "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/bench-plc",
]


def add_fixture(cluster: Cluster) -> None:
    """Create the fidelity objects on old (idempotent), and wait until the claim is Bound."""
    volume = _get(cluster, CLUSTER_FIXTURES[0])
    if volume and (volume.get("status") or {}).get("phase") == "Released":
        # its claim was deleted by an earlier run: the volume is bound to no other claim
        _delete(cluster, [CLUSTER_FIXTURES[0]])
    for path, obj in fixture():
        _post(cluster, path, obj)
    owner = cluster.request("GET", f"/apis/apps/v1/namespaces/{FIDELITY_NS}/deployments/owner")
    _post(cluster, f"/api/v1/namespaces/{FIDELITY_NS}/configmaps", _labelled({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "owned", "namespace": FIDELITY_NS, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "owner",
                "uid": owner["metadata"]["uid"]}]},
        "data": {"made-by": "the owner's operator"}}))
    deadline = time.monotonic() + 120
    while claim_phase(cluster) != "Bound":
        if time.monotonic() > deadline:
            raise TimeoutError("the fixture's claim is not Bound on old after 120s")
        time.sleep(1.0)


def _post(cluster: Cluster, path: str, obj: Obj) -> None:
    try:
        cluster.request("POST", path, body=obj)
    except ApiError as exc:
        if exc.status != 409:
            raise


def _get(cluster: Cluster, path: str) -> Obj | None:
    try:
        return cluster.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def claim_phase(cluster: Cluster) -> str | None:
    claim = _get(cluster, f"/api/v1/namespaces/{FIDELITY_NS}/persistentvolumeclaims/data")
    return ((claim or {}).get("status") or {}).get("phase")


def bench_namespaces() -> list[str]:
    return [f"bench-{i:02d}" for i in range(NAMESPACES)] + [FIDELITY_NS]


def clean(cluster: Cluster) -> float:
    """Remove every bench namespace and cluster-scoped fixture object, and wait until gone."""
    started = time.monotonic()
    delete_namespaces(cluster, bench_namespaces(), wait=900)
    _delete(cluster, CLUSTER_FIXTURES)
    return time.monotonic() - started


def _delete(cluster: Cluster, paths: list[str]) -> None:
    """Delete the objects at ``paths`` and wait until they are gone."""
    for path in paths:
        try:
            cluster.request("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:
                raise
    deadline = time.monotonic() + 120
    while any(_get(cluster, path) for path in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still there after 120s: {paths}")
        time.sleep(0.5)


# -- the two tools -----------------------------------------------------------------------------


@dataclass
class Tools:
    ground: Ground
    velero_old: Velero
    velero_new: Velero
    workers: int

    def migrator(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "migrator", *args, "--kubeconfig", self.ground.kubeconfig]

    @property
    def store_url(self) -> str:
        return f"s3://{self.ground.store.bucket}/{PREFIX}"

    def store_args(self) -> list[str]:
        return ["--store", self.store_url, "--s3-endpoint", self.ground.store.endpoint]

    def export(self, sid: str) -> Run:
        done, run = timed(self.migrator(
            "export", "--from", "old", "--to", "new", "-l", SELECTOR, *self.store_args(),
            "--id", sid, "--restart", "--workers", str(self.workers), "-o", "json"),
            self.ground, "old", env=self.ground.store.env())
        if done.returncode != 0:
            raise RuntimeError(f"migrator export: exit {done.returncode}: {done.stderr[-2000:]!r}")
        report = json.loads(done.stdout)
        run.tool, run.op, run.items = "migrator", "export", report["totals"]["exported"]
        run.detail = {"listed": report["totals"]["listed"],
                      "skipped": report["totals"]["skipped"],
                      "per_type": {r["resource"]: r["exported"] for r in report["resources"]
                                   if r.get("exported")}}
        return run

    def transform(self, sid: str, tid: str) -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        done = subprocess.run(self.migrator(
            "transform", sid, "--to", "new", *self.store_args(), "--id", tid, "-o", "json"),
            cwd=REPO, env={**os.environ, **self.ground.store.env()}, capture_output=True)
        if done.returncode not in (0, 1):  # 1: something for a person to review
            raise RuntimeError(
                f"migrator transform: exit {done.returncode}: {done.stderr[-2000:]!r}")
        return time.monotonic() - started, json.loads(done.stdout)

    def import_(self, tid: str) -> Run:
        done, run = timed(self.migrator(
            "import", tid, "--to", "new", *self.store_args(), "--workers", str(self.workers),
            "-o", "json"), self.ground, "new", env=self.ground.store.env())
        if done.returncode not in (0, 5):
            raise RuntimeError(f"migrator import: exit {done.returncode}: {done.stderr[-2000:]!r}")
        report = json.loads(done.stdout)
        run.tool, run.op = "migrator", "import"
        run.items = report["totals"].get("created", 0) + report["totals"].get("updated", 0)
        run.detail = {"exit": done.returncode, "totals": report["totals"],
                      "failures": report["failures"][:20],
                      "owner_refs": report["ownerReferences"]}
        return run

    def verify(self, tid: str) -> dict[str, Any]:
        done = subprocess.run(self.migrator(
            "verify", tid, "--to", "new", *self.store_args(), "-o", "json"),
            cwd=REPO, env={**os.environ, **self.ground.store.env()}, capture_output=True)
        if done.returncode not in (0, 7):
            raise RuntimeError(f"migrator verify: exit {done.returncode}: {done.stderr[-2000:]!r}")
        return json.loads(done.stdout)

    def _velero(self, velero: Velero, kind: str, name: str, *args: str) -> tuple[Run, Obj]:
        """Run one Velero CLI command that waits for backup or restore ``name``; its status."""
        log_at = velero.log.stat().st_size
        done, run = timed(velero.command(*args), self.ground, velero.context, env=velero.env(),
                          server_pid=velero.server.pid if velero.server else None)
        status = (velero.get(kind, name) or {}).get("status") or {}
        if done.returncode != 0 or status.get("phase") not in ("Completed", "PartiallyFailed"):
            raise RuntimeError(f"velero {kind} {name}: exit {done.returncode}, status {status}, "
                               f"{done.stdout[-1000:]!r} {done.stderr[-1000:]!r}")
        run.tool = "velero"
        run.detail = {"phase": status.get("phase"), "warnings": status.get("warnings", 0),
                      "errors": status.get("errors", 0),
                      "server_errors": velero.errors_in_log(log_at)[:20]}
        return run, status

    def backup(self, name: str) -> Run:
        run, status = self._velero(
            self.velero_old, "backups", name, "backup", "create", name, "--selector", SELECTOR,
            "--include-cluster-resources=true", "--snapshot-volumes=false",
            "--default-volumes-to-fs-backup=false", "--wait")
        run.op, run.items = "backup", (status.get("progress") or {}).get("itemsBackedUp", 0)
        return run

    def restore(self, name: str, backup: str) -> Run:
        run, status = self._velero(self.velero_new, "restores", name, "restore", "create", name,
                                   "--from-backup", backup, "--wait")
        run.op, run.items = "restore", (status.get("progress") or {}).get("itemsRestored", 0)
        run.detail["results"] = self.restore_results(name)
        return run

    def _s3_json(self, key: str) -> Any:
        store = self.ground.store
        s3 = boto3.client("s3", endpoint_url=store.endpoint, region_name=store.region,
                          aws_access_key_id=store.access_key,
                          aws_secret_access_key=store.secret_key)
        body = s3.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        return json.loads(gzip.decompress(body))

    def restore_results(self, name: str) -> dict[str, Any]:
        """The restore's warnings and errors (from the store), messages counted."""
        doc = self._s3_json(f"{self.velero_new.prefix}/restores/{name}/restore-{name}-results.gz")
        out: dict[str, Any] = {}
        for level in ("errors", "warnings"):
            section = doc.get(level) or {}
            messages = [*(section.get("velero") or []), *(section.get("cluster") or [])]
            for items in (section.get("namespaces") or {}).values():
                messages += items
            out[level] = {"count": len(messages), "examples": sorted(set(messages))[:12]}
        contents = self._s3_json(
            f"{self.velero_new.prefix}/restores/{name}/restore-{name}-resource-list.json.gz")
        out["items"] = {kind: len(items) for kind, items in sorted(contents.items())}
        return out

    def backup_contents(self, name: str) -> dict[str, int]:
        """Objects per type in the backup (its resource list in the store)."""
        doc = self._s3_json(f"{self.velero_old.prefix}/backups/{name}/{name}-resource-list.json.gz")
        return {kind: len(items) for kind, items in sorted(doc.items())}


# -- fidelity ----------------------------------------------------------------------------------


# (group, resource) counted on both clusters: the estate's types and the fixture's.
COUNTED = [("", "namespaces"), ("", "configmaps"), ("", "secrets"), ("", "services"),
           ("apps", "deployments"), ("", "persistentvolumes"), ("", "persistentvolumeclaims"),
           ("autoscaling", "horizontalpodautoscalers"), ("networking.k8s.io", "ingresses"),
           ("storage.k8s.io", "csistoragecapacities"),
           ("flowcontrol.apiserver.k8s.io", "flowschemas"),
           ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
           ("policy", "podsecuritypolicies"), ("", "endpoints"),
           ("discovery.k8s.io", "endpointslices"), ("apps", "replicasets")]


def count_labelled(cluster: Cluster) -> dict[str, int]:
    """Objects labelled bench=migrator per ``resource.group``, at a version the cluster serves
    (the group's preferred one when it has the resource)."""
    found = discover(cluster)
    counts = {}
    for group, resource in COUNTED:
        versions = [r.group_version for r in found.iter_resources()
                    if r.group == group and r.name == resource and "list" in r.verbs]
        key = f"{resource}.{group}" if group else resource
        if not versions:
            counts[key] = 0
            continue
        preferred = found.preferred_version(group)
        gv = preferred if preferred in versions else versions[0]
        prefix = f"/apis/{gv}" if group else "/api/v1"
        counts[key] = sum(1 for _ in iter_items(cluster, f"{prefix}/{resource}",
                                                query={"labelSelector": SELECTOR}))
    return counts


def fixture_checks(new: Cluster) -> dict[str, str]:
    """What became of each fixture object on new, in a few words."""
    ns = f"/api/v1/namespaces/{FIDELITY_NS}"
    checks: dict[str, str] = {}
    owned = _get(new, f"{ns}/configmaps/owned")
    owner = _get(new, f"/apis/apps/v1/namespaces/{FIDELITY_NS}/deployments/owner")
    if owned is None:
        checks["owner reference"] = "the owned ConfigMap is missing"
    else:
        refs = owned["metadata"].get("ownerReferences") or []
        uid = (owner or {}).get("metadata", {}).get("uid")
        checks["owner reference"] = ("kept, relinked to the new owner's uid"
                                     if any(r.get("uid") == uid for r in refs) else
                                     f"lost ({len(refs)} references)" if not refs or not uid else
                                     "kept, pointing at the old uid (the garbage collector "
                                     "deletes the object)")
    service = _get(new, f"{ns}/services/fixed-ip")
    checks["Service cluster IP"] = (
        "missing" if service is None else
        f"new address {service['spec'].get('clusterIP')} (old 10.96.200.10: outside new's "
        "service CIDR)")
    claim = _get(new, f"{ns}/persistentvolumeclaims/data")
    volume = _get(new, "/api/v1/persistentvolumes/bench-fidelity-pv")
    checks["PVC binding"] = (
        "claim missing" if claim is None else
        f"claim {(claim.get('status') or {}).get('phase')} to "
        f"{claim['spec'].get('volumeName') or 'no volume'}; volume "
        + ("missing" if volume is None else (volume.get("status") or {}).get("phase", "?")))
    hpa = _get(new, f"/apis/autoscaling/v2/namespaces/{FIDELITY_NS}/horizontalpodautoscalers/owner")
    checks["HPA metrics"] = ("missing" if hpa is None else
                             f"{len(hpa['spec'].get('metrics') or [])} of 2 metrics")
    for label, path in (
            ("CSIStorageCapacity (storage.k8s.io/v1beta1 on old)",
             f"/apis/storage.k8s.io/v1/namespaces/{FIDELITY_NS}/csistoragecapacities/capacity"),
            ("FlowSchema (flowcontrol v1beta1 on old)", CLUSTER_FIXTURES[1]),
            ("PriorityLevelConfiguration (flowcontrol v1beta1 on old)", CLUSTER_FIXTURES[2]),
            ("Ingress (made through extensions/v1beta1 on old)",
             f"/apis/networking.k8s.io/v1/namespaces/{FIDELITY_NS}/ingresses/web")):
        checks[label] = "present" if _get(new, path) else "missing"
    checks["PodSecurityPolicy"] = "not served by 1.33 (removed in 1.25)"
    return checks


def fidelity(tools: Tools, tid: str, source_counts: dict[str, int]) -> dict[str, Any]:
    """What is on new after one tool's run: counts per type, verify's verdict, the fixture."""
    new = tools.ground.cluster("new")
    counts = count_labelled(new)
    report = tools.verify(tid)
    totals = report["totals"]
    paths: Counter[str] = Counter()
    for obj in report["differing"]:
        for diff in obj["differences"]:
            paths[f"{obj['kind']} {diff['path']}"] += 1
    return {
        "counts": counts,
        "lost": {k: source_counts[k] - counts.get(k, 0) for k in source_counts
                 if source_counts[k] > counts.get(k, 0)},
        "added": {k: counts[k] - source_counts.get(k, 0) for k in counts
                  if counts[k] > source_counts.get(k, 0)},
        "verify": {"checked": totals["checked"], "missing": totals["missing"],
                   "differing": totals["differing"],
                   "equal": totals["checked"] - totals["missing"] - totals["differing"],
                   "missing_objects": [f"{o['kind']} {o.get('namespace') or ''}/{o['name']}"
                                       for o in report["missing"][:20]],
                   "differences": dict(paths.most_common(20))},
        "fixture": fixture_checks(new),
    }


# -- rounds ------------------------------------------------------------------------------------


def median_of(runs: list[Run]) -> Run:
    """The median run; of an even number, the slower of the middle two (for both tools)."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def measure(tools: Tools, size: int, rounds: int) -> dict[str, Any]:
    ground = tools.ground
    old, new = ground.cluster("old"), ground.cluster("new")
    populate_s = populate(old, size)
    add_fixture(old)
    source_counts = count_labelled(old)
    tag = f"{size // 1000}k-{int(time.time()) % 100000}"
    exports: dict[str, list[Run]] = {"migrator": [], "velero": []}
    imports: dict[str, list[Run]] = {"migrator": [], "velero": []}
    transforms: list[float] = []
    fid: dict[str, dict[str, Any]] = {}
    loads: list[str] = []
    backup_contents: dict[str, int] = {}
    for index in range(rounds):
        order = ["migrator", "velero"] if index % 2 == 0 else ["velero", "migrator"]
        sid, tid, bname = f"mx-{tag}-{index}", f"mt-{tag}-{index}", f"vb-{tag}-{index}"
        loads.append(", ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(f"[velero-bench] {size}: round {index + 1}/{rounds}, load {loads[-1]}",
              file=sys.stderr, flush=True)
        for tool in order:
            run = tools.export(sid) if tool == "migrator" else tools.backup(bname)
            exports[tool].append(run)
            print(f"[velero-bench]   {run.op}: {run.seconds:.1f}s", file=sys.stderr, flush=True)
        seconds, _report = tools.transform(sid, tid)
        transforms.append(seconds)
        if not backup_contents:
            backup_contents = tools.backup_contents(bname)
        tools.velero_new.wait_for_backup(bname)
        for tool in order:
            clean(new)
            run = tools.import_(tid) if tool == "migrator" else tools.restore(
                f"vr-{tag}-{index}", bname)
            imports[tool].append(run)
            print(f"[velero-bench]   {run.op}: {run.seconds:.1f}s", file=sys.stderr, flush=True)
            if tool not in fid:  # the first round's fidelity (the same in every round)
                fid[tool] = fidelity(tools, tid, source_counts)
    clean(new)
    estate = median_of(exports["migrator"]).items
    result: dict[str, Any] = {"size": size, "estate_objects": estate, "rounds": rounds,
                              "loads": loads, "populate_seconds": round(populate_s, 1),
                              "transform_seconds": round(statistics.median(transforms), 2),
                              "source_counts": source_counts,
                              "velero_backup_contents": backup_contents}
    for op, runs in (("export", exports), ("import", imports)):
        m, v = median_of(runs["migrator"]), median_of(runs["velero"])
        result[op] = {
            "migrator": {**m.to_dict(), "objects_per_second": round(estate / m.seconds)},
            "velero": {**v.to_dict(), "objects_per_second": round(estate / v.seconds)},
            "ratio": round(v.seconds / m.seconds, 2),
            "all_seconds": {t: [round(r.seconds, 2) for r in rs] for t, rs in runs.items()},
        }
    result["fidelity"] = fid
    return result


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| objects | step | Velero | migrator | migrator vs Velero | CPU s tool (Velero "
             "server + CLI / migrator) | CPU s API server + etcd | peak MB (Velero server, CLI / "
             "migrator) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for op, names in (("export", "backup / export"), ("import", "restore / import")):
            v, m = r[op]["velero"], r[op]["migrator"]
            lines.append(
                f"| {r['estate_objects']:,} | {names} | {v['objects_per_second']:,} obj/s "
                f"({v['seconds']:.1f} s) | {m['objects_per_second']:,} obj/s ({m['seconds']:.1f} s)"
                f" | {r[op]['ratio']:.1f}x | {v['server_cpu_s']:.1f} + "
                f"{v['tool_cpu_s'] - v['server_cpu_s']:.1f} / {m['tool_cpu_s']:.1f} | "
                f"{v['cluster_cpu_s']:.1f} / {m['cluster_cpu_s']:.1f} | "
                f"{v['peak_mb']:.0f}, {v['client_peak_mb']:.0f} / {m['peak_mb']:.0f} |")
    for r in results:
        lines.append(f"\n{r['estate_objects']:,} objects (load averages at each round's start: "
                     f"{'; '.join(r['loads'])}); transform {r['transform_seconds']} s")
        for tool, f in r["fidelity"].items():
            v = f["verify"]
            lines.append(f"- {tool}: verify {v['equal']} equal of {v['checked']}, "
                         f"{v['missing']} missing, {v['differing']} differing; lost {f['lost']}; "
                         f"added {f['added']}; differences {v['differences']}")
            lines += [f"    - {k}: {val}" for k, val in f["fixture"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000",
                        help="comma-separated object counts, measured in order")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per size; medians are kept")
    parser.add_argument("--workers", type=int, default=8, help="migrator's --workers")
    parser.add_argument("--state", default=str(REPO / ".proving-ground/state.json"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="leave the bench objects on old (the next run reuses them)")
    args = parser.parse_args()
    ground = Ground(Path(args.state))
    bin_dir = build_velero()
    work = Path(tempfile.mkdtemp(prefix="velero-bench-"))
    velero = {name: Velero(bin_dir, ground.kubeconfig, name, ground.store, f"{PREFIX}-velero",
                           work / name, read_only=name == "new") for name in ("old", "new")}
    results = []
    try:
        for v in velero.values():
            v.work.mkdir(parents=True)
            v.install()
            v.start()
        tools = Tools(ground, velero["old"], velero["new"], args.workers)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "migrator")],
                       check=True)
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(measure(tools, size, args.rounds))
            print(f"size {size}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    finally:
        for v in velero.values():
            v.stop()
        print(f"[velero-bench] Velero's server logs: {work}", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else render(results), flush=True)
    if not args.keep:
        clean(ground.cluster("old"))


if __name__ == "__main__":
    main()

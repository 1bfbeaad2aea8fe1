"""Import benchmark: migrator import vs raw POSTs vs kubectl, into the proving ground's new cluster.

A snapshot of N objects (``--size 20000``; mostly ~1 KiB ConfigMaps in 50 namespaces, plus
Secrets, Services and Deployments with no replicas, see ``common.py``) is written straight
with the snapshot writer (no export needed), and the same objects as manifests. Then, each
run starting from a cluster without the bench namespaces (deleted, and waited for, between
runs):

a. the limit: concurrent POSTs of the same objects, serialised beforehand, ``--workers``
   at a time (namespaces first), with urllib3 and the admin client certificate;
b. by hand: ``kubectl apply --server-side -f DIR`` (kubectl 1.33) on the same manifests;
c. ``python -m migrator import`` of the snapshot with ``--workers``, one run, wall time.

Objects/s are the objects created divided by each method's wall time. Run it alone: the
machine's two cores are shared by the API server, etcd and the client under test.

    .venv/bin/python scripts/bench/import_bench.py --size 20000 [--workers 8] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import NAMESPACES, body, delete_namespaces, plan, raw_pool  # noqa: E402,I001
from migrator.kube import connect  # noqa: E402
from migrator.snapshot import SnapshotWriter  # noqa: E402
from migrator.store import open_store  # noqa: E402

KUBECTL = Path.home() / ".cache/migrator-proving-ground/bin/kubernetes-1.33.13/kubectl"
PREFIX = "ibench"
SNAPSHOT = "import-bench"
Obj = dict[str, Any]
# plural → (group, version, kind) as the snapshot records them
TYPES = {"configmaps": ("", "v1", "ConfigMap"), "secrets": ("", "v1", "Secret"),
         "services": ("", "v1", "Service"), "deployments": ("apps", "v1", "Deployment")}


def namespaces() -> list[str]:
    return [f"{PREFIX}-{index:02d}" for index in range(NAMESPACES)]


def population(size: int) -> tuple[list[Obj], dict[str, list[tuple[str, Obj]]]]:
    """The namespaces, and per plural the (collection path, object) of every bench object."""
    spaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
              for n in namespaces()]
    objects: dict[str, list[tuple[str, Obj]]] = {}
    for kind, count in plan(size).items():
        for i in range(count):
            ns = f"{PREFIX}-{i % NAMESPACES:02d}"
            prefix, obj = body(kind, f"{kind[:-1]}-{i:06d}", ns)
            objects.setdefault(kind, []).append((f"{prefix}/namespaces/{ns}/{kind}", obj))
    return spaces, objects


def write_snapshot(root: Path, spaces: list[Obj], objects: dict[str, list[tuple[str, Obj]]]
                   ) -> float:
    """The snapshot, as export writes it (objects without apiVersion/kind); seconds taken."""
    started = time.monotonic()
    writer = SnapshotWriter(open_store(str(root)), SNAPSHOT)
    with writer.resource("", "v1", "namespaces", "Namespace", False) as res:
        for space in spaces:
            res.write({"metadata": space["metadata"]})
    for kind, items in objects.items():
        group, version, type_kind = TYPES[kind]
        with writer.resource(group, version, kind, type_kind, True) as res:
            for _path, obj in items:
                res.write({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    writer.commit(source={"context": "bench"})
    return time.monotonic() - started


def write_manifests(folder: Path, spaces: list[Obj],
                    objects: dict[str, list[tuple[str, Obj]]]) -> None:
    """One JSON List per file: namespaces first (kubectl reads the files in name order)."""
    folder.mkdir()
    (folder / "00-namespaces.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": spaces}))
    for kind, items in objects.items():
        for start in range(0, len(items), 1000):
            chunk = [obj for _path, obj in items[start:start + 1000]]
            (folder / f"10-{kind}-{start:06d}.json").write_text(
                json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}))


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def limit_run(kubeconfig: str, context: str, workers: int, tmp: Path, spaces: list[Obj],
              objects: dict[str, list[tuple[str, Obj]]]) -> tuple[float, float]:
    """Seconds to POST every object, pre-serialised, ``workers`` at a time; client CPU s."""
    server, pool = raw_pool(kubeconfig, context, workers + 2, tmp)
    ns_jobs = [("/api/v1/namespaces", json.dumps(s).encode()) for s in spaces]
    jobs = [(path, json.dumps(obj).encode()) for items in objects.values()
            for path, obj in items]
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def post(job: tuple[str, bytes]) -> None:
        response = pool.request("POST", server + job[0], body=job[1], headers=headers)
        if response.status != 201:
            raise RuntimeError(f"POST {job[0]}: HTTP {response.status} {response.data[:200]!r}")

    cpu, started = _cpu(resource.getrusage(resource.RUSAGE_SELF)), time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        list(executor.map(post, ns_jobs))
        list(executor.map(post, jobs))
    return time.monotonic() - started, _cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu


def kubectl_run(kubeconfig: str, context: str, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``kubectl apply --server-side -f folder``."""
    started = time.monotonic()
    proc = subprocess.Popen([str(KUBECTL), "--kubeconfig", kubeconfig, "--context", context,
                             "apply", "--server-side", "-f", str(folder)],
                            stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"kubectl apply failed ({status})")
    return time.monotonic() - started, _cpu(usage)


def migrator_run(kubeconfig: str, context: str, workers: int, root: Path) -> dict[str, Any]:
    """Wall time, peak RSS (MB) and the report of one ``migrator import``."""
    out = root / "report.json"
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "migrator", "import", SNAPSHOT, "--store", str(root),
             "--to", context, "--kubeconfig", kubeconfig, "--workers", str(workers),
             "--restart", "-o", "json"], cwd=REPO, stdout=sink)
        _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    report = json.loads(out.read_text())
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"migrator import failed ({status}): {report.get('failures', [])[:3]}")
    return {"seconds": seconds, "cpu_seconds": _cpu(usage),
            "peak_rss_mb": usage.ru_maxrss / 1024, "report": report}


def measure(kubeconfig: str, context: str, size: int, workers: int,
            methods: list[str]) -> dict[str, Any]:
    cluster = connect(kubeconfig, context)
    spaces, objects = population(size)
    total = len(spaces) + sum(len(items) for items in objects.values())
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of the client (the cores are shared with the server)
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        extra["snapshot_write_seconds"] = round(write_snapshot(tmp / "store", spaces, objects), 2)
        write_manifests(tmp / "manifests", spaces, objects)
        for method in methods:
            delete_namespaces(cluster, namespaces(), wait=600)
            if method == "limit":
                seconds[method], cpu[method] = limit_run(kubeconfig, context, workers, tmp,
                                                         spaces, objects)
            elif method == "kubectl":
                seconds[method], cpu[method] = kubectl_run(kubeconfig, context, tmp / "manifests")
            else:
                result = migrator_run(kubeconfig, context, workers, tmp / "store")
                seconds[method], cpu[method] = result["seconds"], result["cpu_seconds"]
                extra["migrator_peak_rss_mb"] = round(result["peak_rss_mb"], 1)
                extra["migrator_created"] = result["report"]["totals"]["created"]
        delete_namespaces(cluster, namespaces(), wait=600)
    rates = {name: total / s for name, s in seconds.items()}
    ratios = {}
    if "migrator" in rates:
        ratios = {f"migrator_vs_{name}": round(rates["migrator"] / rate, 2)
                  for name, rate in rates.items() if name != "migrator"}
    return {"objects": total, "workers": workers,
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "client_cpu_ms_per_object": {k: round(1000 * v / total, 2) for k, v in cpu.items()},
            "objects_per_second": {k: round(v) for k, v in rates.items()}, **ratios, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="objects besides namespaces")
    parser.add_argument("--kubeconfig", default=str(REPO / ".proving-ground/kubeconfig"))
    parser.add_argument("--to", dest="context", default="new", metavar="CONTEXT",
                        help="the cluster to import into")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--methods", default="limit,migrator,kubectl",
                        help="comma-separated, run in this order: limit, migrator, kubectl")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    result = measure(args.kubeconfig, args.context, args.size, args.workers,
                     args.methods.split(","))
    print(json.dumps(result, indent=None if args.json else 2))
    if not args.json:
        print("goals: migrator >= 0.7x the limit (raw POSTs), >= 5x kubectl apply --server-side")


if __name__ == "__main__":
    main()

"""Export benchmark: migrator export vs the HTTP limit vs kubectl, on the proving ground's
old cluster.

For each size N (``--sizes 5000,20000``), the old cluster is brought to exactly N objects
labelled ``bench=migrator`` (mostly ~1 KiB ConfigMaps in 50 namespaces, plus Secrets,
Services and Deployments with no replicas; created and deleted concurrently, idempotently),
then:

a. the limit: plain paginated GETs of the very lists migrator reads (same types, page size,
   selectors and concurrency), bodies read and discarded, with urllib3 and the admin client
   certificate of the kubeconfig;
b. by hand: ``kubectl get TYPE -A -o json`` for every type migrator exports (old kubectl);
c. ``python -m migrator export`` to a temporary local directory, as a user runs it (page
   worker processes, one per core): wall time, and peak memory of the command with its
   worker processes (resident set sizes summed, sampled every 10 ms);
d. the same with ``--processes 0``: everything in one process.

The limit and both migrator runs are interleaved for ``--rounds`` rounds (medians kept),
kubectl runs once at the end. Objects/s are the objects migrator listed divided by each
method's time. migrator's own package is byte-compiled first, as an installed copy is. Run
it alone: on the proving ground the API server, etcd and the client under test share the
machine's cores.

    .venv/bin/python scripts/bench/export_bench.py --sizes 5000,20000 [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from migrator.errors import ApiError  # noqa: E402
from migrator.export import ExportOptions  # noqa: E402
from migrator.export import plan as export_plan  # noqa: E402
from migrator.kube import Cluster, connect, discover, iter_items  # noqa: E402
from migrator.kube.pager import DEFAULT_PAGE_SIZE  # noqa: E402
from migrator.resources.regenerated import type_skip  # noqa: E402
from migrator.resources.scope import Scope  # noqa: E402
from migrator.resources.types import ResourceType  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LABEL, NAMESPACES, SELECTOR, body, delete_namespaces, plan, raw_pool  # noqa: E402

KUBECTL = Path.home() / ".cache/migrator-proving-ground/bin/kubernetes-1.21.14/kubectl"


def existing(cluster: Cluster, kind: str) -> set[tuple[str, str]]:
    prefix = "/apis/apps/v1" if kind == "deployments" else "/api/v1"
    items = iter_items(cluster, f"{prefix}/{kind}", query={"labelSelector": SELECTOR})
    return {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items}


def populate(cluster: Cluster, total: int, workers: int = 16) -> float:
    """Make the bench objects exactly ``plan(total)``; returns the seconds it took."""
    started = time.monotonic()
    wait_until_not_terminating(cluster)
    for index in range(NAMESPACES):
        try:
            cluster.request("POST", "/api/v1/namespaces", body={
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": f"bench-{index:02d}", "labels": dict(LABEL)}})
        except ApiError as exc:
            if exc.status != 409:
                raise
    jobs: list[tuple[str, str, str, str]] = []  # (verb, kind, namespace, name)
    for kind, count in plan(total).items():
        have = existing(cluster, kind)
        want = {(f"bench-{i % NAMESPACES:02d}", f"{kind[:-1]}-{i:06d}") for i in range(count)}
        jobs += [("POST", kind, ns, name) for ns, name in sorted(want - have)]
        jobs += [("DELETE", kind, ns, name) for ns, name in sorted(have - want)]

    def apply(job: tuple[str, str, str, str]) -> None:
        verb, kind, ns, name = job
        prefix, doc = body(kind, name, ns)
        try:
            if verb == "POST":
                cluster.request("POST", f"{prefix}/namespaces/{ns}/{kind}", body=doc)
            else:
                cluster.request("DELETE", f"{prefix}/namespaces/{ns}/{kind}/{name}")
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(apply, jobs))
    return time.monotonic() - started


def wait_until_not_terminating(cluster: Cluster, timeout: float = 600.0) -> None:
    """Wait while bench namespaces of an earlier run are still being deleted: nothing can be
    created in them until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        items = iter_items(cluster, "/api/v1/namespaces", query={"labelSelector": SELECTOR})
        terminating = [o["metadata"]["name"] for o in items
                       if (o.get("status") or {}).get("phase") == "Terminating"]
        if not terminating:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench namespaces still terminating: {terminating[:5]}")
        time.sleep(1.0)


# -- (a) the limit ---------------------------------------------------------------------------


class RawLists:
    """Paginated GETs with urllib3 and the kubeconfig's admin client certificate."""

    def __init__(self, kubeconfig: str, context: str, workers: int, tmp: Path) -> None:
        self.server, self.pool = raw_pool(kubeconfig, context, workers + 2, tmp)

    def list_all(self, path: str, query: dict[str, Any]) -> None:
        token = ""
        while True:
            params = {**query, **({"continue": token} if token else {})}
            response = self.pool.request("GET", self.server + path, fields=params,
                                         preload_content=False)
            # Bodies are discarded: only the continue token is needed, and it sits in the
            # list's metadata at the start of the body.
            data = response.read()
            response.release_conn()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {response.status}")
            head = data[:2048]
            marker = b'"continue":"'
            at = head.find(marker)
            token = head[at + len(marker): head.find(b'"', at + len(marker))].decode() \
                if at >= 0 else ""
            if not token:
                return


def limit_run(raw: RawLists, types: list[ResourceType], workers: int) -> float:
    """Seconds to read every page of every list migrator reads, ``workers`` lists at a time."""
    selector = Scope.build(include_system_namespaces=False).field_selector()
    jobs = [(t.list_path(), {"limit": DEFAULT_PAGE_SIZE,
                             **({"fieldSelector": selector} if t.namespaced else {})})
            for t in types]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda job: raw.list_all(*job), jobs))
    return time.monotonic() - started


# -- (b) kubectl, (c) migrator ---------------------------------------------------------------


def kubectl_run(kubeconfig: str, context: str, types: list[ResourceType]) -> float:
    started = time.monotonic()
    for t in types:
        name = f"{t.resource}.{t.version}.{t.group}" if t.group else t.resource
        subprocess.run([str(KUBECTL), "--kubeconfig", kubeconfig, "--context", context, "get",
                        name, "-A", "-o", "json"], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def migrator_run(kubeconfig: str, context: str, workers: int, tmp: Path,
                 processes: int | None = None) -> dict[str, Any]:
    """Wall time, peak memory (MB, the command and its worker processes) and its report."""
    out = tmp / "report.json"
    extra = [] if processes is None else ["--processes", str(processes)]
    started = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "migrator", "export", "--from", context, "--kubeconfig",
             kubeconfig, "--store", str(tmp / "snapshots"), "--id", "bench", "--restart",
             "--workers", str(workers), *extra, "-o", "json"], cwd=REPO, stdout=sink)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.01)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"migrator export failed with status {proc.returncode}")
    report = json.loads(out.read_text())
    return {"seconds": seconds, "peak_rss_mb": peak / 2**20, "report": report}


def tree_rss(pid: int) -> int:
    """Bytes resident in process ``pid`` and its descendants now (0 once it is gone)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def cleanup(cluster: Cluster) -> None:
    """Delete the bench namespaces (their objects go with them, in the background)."""
    delete_namespaces(cluster, (f"bench-{index:02d}" for index in range(NAMESPACES)))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (its report and memory with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def measure(kubeconfig: str, context: str, size: int, workers: int,
            rounds: int) -> dict[str, Any]:
    cluster = connect(kubeconfig, context, pool_size=24)
    populate_s = populate(cluster, size)
    types = [t for t in export_plan(discover(cluster), None, ExportOptions()).types
             if type_skip(t.group, t.resource) is None]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "migrator")], check=True)
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        limit_run(RawLists(kubeconfig, context, workers, tmp), types, workers)  # warm caches
        # Interleaved rounds, medians kept: the machine's noise hits every method alike.
        limits, runs, singles = [], [], []
        for _round in range(rounds):
            limits.append(limit_run(RawLists(kubeconfig, context, workers, tmp), types, workers))
            runs.append(migrator_run(kubeconfig, context, workers, tmp))
            singles.append(migrator_run(kubeconfig, context, workers, tmp, processes=0))
        kubectl_s = kubectl_run(kubeconfig, context, types)  # last: it loads the server most
    limit_s = statistics.median(limits)
    result = median_run(runs)
    single = median_run(singles)
    objects = result["report"]["totals"]["listed"]
    list_s = result["report"]["listSeconds"]
    rates = {name: objects / seconds for name, seconds in
             (("limit", limit_s), ("kubectl", kubectl_s), ("migrator", result["seconds"]),
              ("migrator_listing", list_s), ("migrator_one_process", single["seconds"]))}
    return {
        "size": size,
        "objects_listed": objects,
        "objects_exported": result["report"]["totals"]["exported"],
        "types": len(types),
        "workers": workers,
        "rounds": rounds,
        "populate_seconds": round(populate_s, 1),
        "seconds": {"limit": round(limit_s, 2), "kubectl": round(kubectl_s, 2),
                    "migrator": round(result["seconds"], 2),
                    "migrator_listing": round(list_s, 2),
                    "migrator_one_process": round(single["seconds"], 2)},
        "objects_per_second": {k: round(v) for k, v in rates.items()},
        "migrator_vs_limit": round(rates["migrator"] / rates["limit"], 2),
        "migrator_listing_vs_limit": round(rates["migrator_listing"] / rates["limit"], 2),
        "migrator_one_process_vs_limit": round(rates["migrator_one_process"] / rates["limit"], 2),
        "migrator_vs_kubectl": round(rates["migrator"] / rates["kubectl"], 2),
        "migrator_peak_rss_mb": round(result["peak_rss_mb"], 1),
        "migrator_one_process_peak_rss_mb": round(single["peak_rss_mb"], 1),
    }


def render(results: list[dict[str, Any]]) -> str:
    header = ("objects", "limit obj/s", "kubectl obj/s", "migrator obj/s", "vs limit",
              "vs kubectl", "listing obj/s", "listing vs limit", "one process obj/s",
              "peak MB", "one process peak MB")
    rows = [header] + [
        (str(r["objects_listed"]), str(r["objects_per_second"]["limit"]),
         str(r["objects_per_second"]["kubectl"]), str(r["objects_per_second"]["migrator"]),
         f"{r['migrator_vs_limit']:.2f}x", f"{r['migrator_vs_kubectl']:.2f}x",
         str(r["objects_per_second"]["migrator_listing"]),
         f"{r['migrator_listing_vs_limit']:.2f}x",
         str(r["objects_per_second"]["migrator_one_process"]),
         f"{r['migrator_peak_rss_mb']:.0f}", f"{r['migrator_one_process_peak_rss_mb']:.0f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("migrator obj/s: the whole command (start-up, discovery, manifest included); "
                 "listing obj/s: its listing and writing phase; one process: --processes 0")
    lines.append("goals: >= 0.80x the limit, >= 3x kubectl, peak memory flat and < 250 MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000",
                        help="comma-separated object counts, measured in order")
    parser.add_argument("--kubeconfig", default=str(REPO / ".proving-ground/kubeconfig"))
    parser.add_argument("--from", dest="context", default="old", metavar="CONTEXT",
                        help="the cluster to export from")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of limit and migrator runs; medians are kept")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="leave the bench objects in the cluster (the next run reuses them)")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(measure(args.kubeconfig, args.context, size, args.workers, args.rounds))
        if not args.json:
            print(f"size {size}: {json.dumps(results[-1])}", file=sys.stderr)
    if not args.keep:
        cleanup(connect(args.kubeconfig, args.context))
    print(json.dumps(results, indent=2) if args.json else render(results))


if __name__ == "__main__":
    main()

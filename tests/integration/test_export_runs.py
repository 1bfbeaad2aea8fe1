"""Export runs that go wrong or are narrowed: killed midway and resumed, an aggregated API that
is down, and the filters (namespaces, label selector, resources, cluster-scoped)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import SnapshotIncomplete
from migrator.export import ExportOptions, export_cluster
from migrator.kube import discover, iter_items
from migrator.snapshot import SnapshotReader
from migrator.store import open_store
from tests.populate import Population, populate
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def population(old_cluster) -> Iterator[Population]:
    pop = populate(old_cluster.client, prefix="runs")
    yield pop
    pop.cleanup()


def contents(root: Path, snapshot_id: str) -> dict[str, set[tuple[str | None, str]]]:
    """(namespace, name) of every object, by ``resource[.group]/version``."""
    reader = SnapshotReader(open_store(str(root)), snapshot_id)
    return {
        f"{e['resource']}.{e['group']}/{e['version']}": {
            (o["metadata"].get("namespace"), o["metadata"]["name"]) for o in reader.iter_objects(e)
        }
        for e in reader.resources()
    }


def mine(found: dict[str, set[tuple[str | None, str]]], pop: Population) -> dict[str, set]:
    """Only what the population made: other tests share the cluster."""
    ours = {c.name for c in pop.cluster_scoped()}
    return {
        key: {(ns, name) for ns, name in items if ns == pop.namespace or name in ours}
        for key, items in found.items()
    }


def children(pid: int) -> list[int]:
    """The pids of the processes ``pid`` started (Linux)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_export_killed_midway_then_rerun_is_complete_and_correct(
    old_cluster, population, tmp_path
):
    root = tmp_path / "snaps"
    args = ["export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig, "--store", str(root),
            "--include-namespace", population.namespace, "--cluster-scoped", "--workers", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "migrator", *args, "--id", "killed",
                             "--processes", "2"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    resources = root / "killed" / "resources"

    def one_finished() -> list[Path]:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        return list(resources.glob("*/*/*/_done.json"))

    try:
        wait_until("a resource finished", one_finished, timeout=60, interval=0.002)
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (root / "killed" / "manifest.json").exists(), "the export finished before the kill"
    assert len(workers) == 2, "the export runs its pages in two worker processes"
    wait_until("the worker processes gone with the killed export",
               lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
               timeout=30, interval=0.05)  # they poll for their parent every 0.5 s
    with pytest.raises(SnapshotIncomplete):
        SnapshotReader(open_store(str(root)), "killed")
    listed = CliRunner().invoke(cli, ["snapshot", "list", "--store", str(root)])
    assert "INTERRUPTED" in listed.stdout

    resumed = CliRunner().invoke(cli, [*args, "--id", "killed", "-o", "json"])
    assert resumed.exit_code == 0, resumed.output
    states = {e["resource"]: e["state"] for e in json.loads(resumed.stdout)["resources"]}
    assert "resumed" in states.values() and "exported" in states.values()
    fresh = CliRunner().invoke(cli, [*args, "--id", "fresh", "-o", "json"])
    assert fresh.exit_code == 0, fresh.output
    assert mine(contents(root, "killed"), population) == mine(contents(root, "fresh"), population)
    assert CliRunner().invoke(cli, ["snapshot", "verify", "killed", "--store", str(root)]).exit_code == 0
    # Nothing left over from the killed run: every stored part is one the manifest lists.
    reader = SnapshotReader(open_store(str(root)), "killed")
    listed_parts = {p["key"] for e in reader.resources() for p in e["parts"] + e["aside_parts"]}
    stored_parts = {str(p.relative_to(root / "killed")) for p in resources.rglob("*.jsonl.gz*")}
    assert stored_parts == listed_parts


def test_unreachable_aggregated_api_is_reported_not_fatal(old_cluster, population, tmp_path):
    api = old_cluster.client
    name = f"v1alpha1.{population.suffix}.down.migrator.test"
    group_version = f"{population.suffix}.down.migrator.test/v1alpha1"
    api.request("POST", "/apis/apiregistration.k8s.io/v1/apiservices", body={
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name},
        "spec": {"group": f"{population.suffix}.down.migrator.test", "version": "v1alpha1",
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "insecureSkipTLSVerify": True,
                 "service": {"namespace": population.namespace, "name": "no-such-service",
                             "port": 443}}})
    try:
        wait_until("the broken API failing discovery",
                   lambda: group_version in discover(api).failed, timeout=30, interval=1)
        result = CliRunner().invoke(cli, [
            "export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig,
            "--store", str(tmp_path), "--include-namespace", population.namespace,
            "--id", "down", "-o", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert group_version in report["failedDiscovery"]
        manifest = SnapshotReader(open_store(str(tmp_path)), "down").manifest
        assert group_version in manifest["export"]["failedDiscovery"]
        assert group_version in manifest["discovery"]["failed"]
        assert report["totals"]["exported"] == sum(e["objects"] for e in manifest["resources"])
        exported = contents(tmp_path, "down")
        assert {name for _, name in exported["configmaps./v1"]} >= set(
            population.names("configmaps"))
    finally:
        api.request("DELETE", f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")


def export(old_cluster, tmp_path, **options) -> dict:
    result = export_cluster(old_cluster.client, open_store(str(tmp_path)),
                            snapshot_id=f"s-{uuid.uuid4().hex[:8]}", options=ExportOptions(**options))
    return {"report": result.report, "contents": contents(tmp_path, result.report.snapshot_id)}


def test_include_namespace_keeps_only_it_and_its_namespace_object(
    old_cluster, population, tmp_path
):
    out = export(old_cluster, tmp_path, include_namespaces=(population.namespace,))
    for key, items in out["contents"].items():
        if key.startswith("namespaces."):
            assert items == {(None, population.namespace)}
        else:
            assert {ns for ns, _ in items} <= {population.namespace}, key
    assert all(r.namespaced or r.key == "namespaces" for r in out["report"].resources)


def test_exclude_namespace_and_system_namespaces(old_cluster, population, tmp_path):
    out = export(old_cluster, tmp_path, exclude_namespaces=(population.namespace,),
                 include_resources=("namespaces", "configmaps", "deployments", "roles"))
    found = out["contents"]
    every_ns = {ns for items in found.values() for ns, _ in items}
    assert population.namespace not in every_ns and "kube-system" not in every_ns
    ns_report = next(r for r in out["report"].resources if r.key == "namespaces")
    assert ns_report.skipped["namespace-filtered"] == 1
    assert ns_report.skipped["system-namespace"] == 3
    with_system = export(old_cluster, tmp_path, include_system_namespaces=True,
                         include_resources=("namespaces", "cm"))
    assert (None, "kube-system") in with_system["contents"]["namespaces./v1"]
    assert any(ns == "kube-system" for ns, _ in with_system["contents"]["configmaps./v1"])


def test_label_selector_applies_to_every_type(old_cluster, population, tmp_path):
    out = export(old_cluster, tmp_path, include_namespaces=(population.namespace,),
                 label_selector="tier=web")
    found = {k: v for k, v in out["contents"].items() if v}
    assert found["configmaps./v1"] == {(population.namespace, "settings")}
    assert found["deployments.apps/v1"] == {(population.namespace, "web")}
    assert "secrets./v1" not in found and "namespaces./v1" not in found


def test_include_and_exclude_resources(old_cluster, population, tmp_path):
    out = export(old_cluster, tmp_path, include_namespaces=(population.namespace,),
                 include_resources=("configmaps", "deploy", "ingresses.extensions"))
    assert sorted(r.key for r in out["report"].resources) == [
        "configmaps", "deployments.apps", "ingresses.networking.k8s.io"]
    out = export(old_cluster, tmp_path, include_namespaces=(population.namespace,),
                 exclude_resources=("secrets", "Deployment"))
    keys = {r.key for r in out["report"].resources}
    assert "secrets" not in keys and "deployments.apps" not in keys and "configmaps" in keys
    typo = CliRunner().invoke(cli, ["export", "--from", "old", "--kubeconfig",
                                    old_cluster.kubeconfig, "--store", str(tmp_path),
                                    "--include-resource", "deploymnets"])
    assert typo.exit_code == 2 and "deploymnets" in typo.stderr
    missing = CliRunner().invoke(cli, ["export", "--from", "old", "--kubeconfig",
                                       old_cluster.kubeconfig, "--store", str(tmp_path),
                                       "--include-namespace", "no-such-ns-here"])
    assert missing.exit_code == 2 and "no-such-ns-here" in missing.stderr


def test_cluster_scoped_off_and_on(old_cluster, population, tmp_path):
    off = export(old_cluster, tmp_path, cluster_scoped=False)
    assert off["report"].resources and all(r.namespaced for r in off["report"].resources)
    on = export(old_cluster, tmp_path, include_namespaces=(population.namespace,),
                cluster_scoped=True, include_resources=("pv", "crd", "ns"))
    pvs = {name for _, name in on["contents"]["persistentvolumes./v1"]}
    assert {f"pop-{population.suffix}-pv1", f"pop-{population.suffix}-pv2"} <= pvs
    crds = {name for _, name in on["contents"]["customresourcedefinitions.apiextensions.k8s.io/v1"]}
    assert crds == {o["metadata"]["name"] for o in iter_items(
        old_cluster.client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")}
    assert f"widgets.{population.crd_group}" in crds


def test_progress_callback_reports_each_type(old_cluster, population, tmp_path):
    seen: dict[str, tuple[int, int | None]] = {}
    export_cluster(old_cluster.client, open_store(str(tmp_path)),
                   options=ExportOptions(include_namespaces=(population.namespace,)),
                   on_progress=lambda key, done, total: seen.__setitem__(key, (done, total)))
    direct = old_cluster.client.request(
        "GET", f"/api/v1/namespaces/{population.namespace}/configmaps")["items"]
    assert len(direct) >= 2  # settings and kube-root-ca.crt at least
    assert seen["configmaps"] == (len(direct), len(direct))  # every one listed, total known


def test_keep_cluster_ips_keeps_the_live_addresses_and_says_so(old_cluster, make_namespace,
                                                               tmp_path):
    namespace = make_namespace(old_cluster)
    live = old_cluster.client.request("POST", f"/api/v1/namespaces/{namespace}/services", body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})["spec"]
    assert live["clusterIP"] not in ("", "None")

    def exported_service(*flags: str) -> tuple[dict, dict]:
        snapshot_id = f"ips-{uuid.uuid4().hex[:8]}"
        result = CliRunner().invoke(cli, [
            "export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig,
            "--store", str(tmp_path), "--include-namespace", namespace,
            "--include-resource", "services", "--id", snapshot_id, "-o", "json", *flags])
        assert result.exit_code == 0, result.output
        reader = SnapshotReader(open_store(str(tmp_path)), snapshot_id)
        [service] = reader.iter_objects(reader.find("", "v1", "services"))
        return service, reader.manifest["export"]

    kept, export_info = exported_service("--keep-cluster-ips")
    assert kept["spec"]["clusterIP"] == live["clusterIP"]
    assert kept["spec"].get("clusterIPs", [live["clusterIP"]]) == [live["clusterIP"]]
    assert export_info["kept"] == {"clusterIPs": True, "nodePorts": False}
    [services] = [r for r in export_info["resources"] if r["resource"] == "services"]
    assert "spec.clusterIP(s)" not in services["stripped"]

    stripped, export_info = exported_service()
    assert "clusterIP" not in stripped["spec"] and "clusterIPs" not in stripped["spec"]
    assert export_info["kept"] == {"clusterIPs": False, "nodePorts": False}

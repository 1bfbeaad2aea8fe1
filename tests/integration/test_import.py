"""Import and verify against the new cluster, with snapshots written object by object."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import LockHeld
from migrator.importer import ConflictPolicy, ImportOptions, import_snapshot
from migrator.importer.runner import LOCK_NAME as NAME
from migrator.kube.lease import HOLDER_ANNOTATION, NAMESPACE, micro_time
from migrator.resources.scope import Scope
from migrator.snapshot import SnapshotReader
from migrator.store import LocalStore
from migrator.verify import VerifyOptions, verify_snapshot
from tests.integration.import_snapshots import (
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    NAMESPACES,
    PVCS,
    PVS,
    SECRETS,
    SERVICES,
    WEBHOOKS,
    Contents,
    configmap,
    delete_quietly,
    owner_ref,
    unique,
    write_snapshot,
)

LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{NAME}"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(str(tmp_path / "snapshots"))


@pytest.fixture
def cleanup(new_cluster) -> Iterator[list[str]]:
    """Paths of objects to delete from ``new`` after the test (namespaces, cluster-scoped)."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        delete_quietly(new_cluster.client, path)


def namespace(name: str, cleanup: list[str], labels: dict[str, str] | None = None) -> dict:
    cleanup.append(f"/api/v1/namespaces/{name}")
    return {"metadata": {"name": name, "labels": labels or {}}}


def rich_contents(ns: str, suffix: str, cleanup: list[str]) -> Contents:
    """A namespace with a CRD and a CR, a PV/PVC pair, owned objects and a blocking webhook."""
    group = f"{suffix}.import.migrator.test"
    crd_name = f"widgets.{group}"
    cleanup.append(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}")
    cleanup.append(f"/api/v1/persistentvolumes/pv-{suffix}")
    cleanup.append("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                   f"deny-{suffix}")
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup, {"import-test": suffix}))
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    c.add(CRDS, {"metadata": {"name": crd_name}, "spec": {
        "group": group, "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]}})
    widgets = (group, "v1", "widgets", "Widget", True)
    c.add(widgets, {"metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}},
          status={"ready": True, "observed": 3})
    c.add(CONFIGMAPS, configmap(ns, "owned-by-widget", owners=[
        owner_ref(f"{group}/v1", "Widget", "w1")]))
    c.add(CONFIGMAPS, configmap(ns, "orphan", owners=[
        owner_ref("apps/v1", "Deployment", "not-in-snapshot")]))
    c.add(CONFIGMAPS, configmap(ns, "plain", {"greeting": "héllo"}))
    c.add(SECRETS, {"metadata": {"name": "creds", "namespace": ns}, "type": "Opaque",
                    "data": {"password": "c2VjcmV0"}})
    c.add(PVS, {"metadata": {"name": f"pv-{suffix}"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": f"manual-{suffix}",
        "hostPath": {"path": f"/tmp/pv-{suffix}"}, "claimRef": {"namespace": ns,
                                                                "name": "data"}}},
          status={"phase": "Bound"})
    c.add(PVCS, {"metadata": {"name": "data", "namespace": ns}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": f"manual-{suffix}",
        "volumeName": f"pv-{suffix}", "resources": {"requests": {"storage": "1Gi"}}}})
    labels = {"app": "web"}
    c.add(DEPLOYMENTS, {"metadata": {"name": "web", "namespace": ns}, "spec": {
        "replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}})
    c.add(SERVICES, {"metadata": {"name": "web", "namespace": ns}, "spec": {
        "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    # Its service does not exist: imported before the rest, it would reject every ConfigMap.
    c.add(WEBHOOKS, {"metadata": {"name": f"deny-{suffix}"}, "webhooks": [{
        "name": f"deny.{group}", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail", "timeoutSeconds": 2,
        "namespaceSelector": {"matchLabels": {"import-test": suffix}},
        "clientConfig": {"service": {"namespace": ns, "name": "missing", "port": 443}},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                   "resources": ["configmaps", "secrets"]}]}]})
    return c


def get(cluster, path: str) -> dict[str, Any]:
    return cluster.client.request("GET", path)


def test_import_in_order_relinks_owners_binds_volumes_and_verifies(new_cluster, store, cleanup):
    suffix = unique("r").split("-")[1]
    ns = f"imp-{suffix}"
    write_snapshot(store, "rich", rich_contents(ns, suffix, cleanup))
    reader = SnapshotReader(store, "rich")
    seen: list[str] = []
    report = import_snapshot(reader, new_cluster.client, ImportOptions(restore_status=True),
                             on_progress=lambda phase, done, total: seen.append(phase))
    data = report.to_dict()
    assert data["failures"] == []
    assert [p["name"] for p in data["phases"]] == [
        "crds", "namespaces", "persistent-volumes", "persistent-volume-claims", "config",
        "workloads", "networking", "custom-resources", "owned-1", "webhooks"]
    assert list(dict.fromkeys(seen)) == [p["name"] for p in data["phases"]]
    assert data["totals"]["created"] == 12 and data["crds"] == {
        f"widgets.{suffix}.import.migrator.test": "Established"}
    assert "failurePolicy unchanged" in data["webhooks"]
    # Owners: relinked to the Widget's new uid; the missing Deployment's reference dropped.
    widget = get(new_cluster, f"/apis/{suffix}.import.migrator.test/v1/namespaces/{ns}/widgets/w1")
    owned = get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/owned-by-widget")
    assert [r["uid"] for r in owned["metadata"]["ownerReferences"]] == [widget["metadata"]["uid"]]
    assert "ownerReferences" not in get(
        new_cluster, f"/api/v1/namespaces/{ns}/configmaps/orphan")["metadata"]
    assert [(d["name"], d["ownerName"]) for d in data["ownerReferences"]["dropped"]] == [
        ("orphan", "not-in-snapshot")]
    assert widget["status"] == {"ready": True, "observed": 3}  # --restore-status
    # The claim binds to its own volume.
    result = verify_snapshot(reader, new_cluster.client, VerifyOptions(wait=90, poll=1))
    assert result.to_dict()["totals"] | {"checked": 0} == {
        "checked": 0, "missing": 0, "differing": 0, "extra": 0, "notCompared": 0, "ready": 3,
        "notReady": 0, "notReadyAsOnSource": 0}, \
        result.to_dict()
    pv = get(new_cluster, f"/api/v1/persistentvolumes/pv-{suffix}")
    claim = get(new_cluster, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
    assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert claim["spec"]["volumeName"] == f"pv-{suffix}"
    # A second run finds everything recorded: nothing is applied again.
    again = import_snapshot(reader, new_cluster.client, ImportOptions(restore_status=True))
    assert again.resumed and again.from_earlier_runs == 12 and not again.partial
    # A live change is reported, Secret values are never shown.
    new_cluster.client.request("PUT", f"/api/v1/namespaces/{ns}/secrets/creds", body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
        "type": "Opaque", "data": {"password": "Y2hhbmdlZA=="}})
    changed = verify_snapshot(reader, new_cluster.client, VerifyOptions())
    assert [(d["name"], [x["path"] for x in d["differences"]]) for d in changed.differing] == [
        ("creds", ["/data/password"])]
    assert "c2VjcmV0" not in json.dumps(changed.to_dict())
    assert "Y2hhbmdlZA==" not in json.dumps(changed.to_dict())


def test_rejected_object_the_rest_lands_exit_code_partial(new_cluster, store, cleanup):
    ns = unique("imp-reject")
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup))
    c.add(CONFIGMAPS, configmap(ns, "fine"))
    c.add(CONFIGMAPS, configmap(ns, "Not_A_Valid_Name"))  # as a bad user rule would leave it
    c.add(CONFIGMAPS, configmap(ns, "also-fine"))
    write_snapshot(store, "reject", c)
    result = CliRunner().invoke(cli, ["import", "reject", "--store", store.url, "--to",
                                      new_cluster.context, "--kubeconfig",
                                      new_cluster.kubeconfig, "-o", "json"])
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert [(f["name"], "Invalid" in f["error"]) for f in report["failures"]] == [
        ("Not_A_Valid_Name", True)]
    assert report["totals"]["created"] == 3
    for name in ("fine", "also-fine"):
        get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/{name}")
    assert "could not be imported" in result.stderr


@pytest.mark.parametrize("policy", ["skip", "update", "fail"])
def test_conflict_policies(new_cluster, store, cleanup, policy):
    ns = unique(f"imp-{policy}")
    new_cluster.client.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cleanup.append(f"/api/v1/namespaces/{ns}")
    new_cluster.client.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings",
                                                             "labels": {"mine": "yes"}},
        "data": {"mode": "target"}})
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup))
    c.add(CONFIGMAPS, configmap(ns, "settings", {"mode": "snapshot"}))
    c.add(CONFIGMAPS, configmap(ns, "new-one"))
    write_snapshot(store, "conflict", c)
    report = import_snapshot(SnapshotReader(store, "conflict"), new_cluster.client,
                             ImportOptions(conflict=ConflictPolicy(policy)))
    live = get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/settings")
    totals = report.to_dict()["totals"]
    get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/new-one")
    if policy == "update":
        assert live["data"] == {"mode": "snapshot"}
        assert report.to_dict()["resources"]["configmaps"] == {"created": 1, "updated": 1}
        assert live["metadata"]["labels"] == {"mine": "yes"}  # fields we do not set stay
        assert not report.partial
    else:
        assert live["data"] == {"mode": "target"}
        assert report.partial == (policy == "fail")
        assert totals["skipped" if policy == "skip" else "failed"] == 2  # + the namespace
        if policy == "fail":
            assert {f["name"] for f in report.failures} == {ns, "settings"}
            assert all("already exists" in f["error"] for f in report.failures)


def test_dry_run_changes_nothing(new_cluster, store, cleanup):
    ns = unique("imp-dry")
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup))
    c.add(CONFIGMAPS, configmap(ns, "a"))
    write_snapshot(store, "dry", c)
    report = import_snapshot(SnapshotReader(store, "dry"), new_cluster.client,
                             ImportOptions(dry_run=True))
    totals = report.to_dict()["totals"]
    assert (totals["created"], totals["unchecked"], totals["failed"]) == (1, 1, 0)
    assert "namespace" in report.unchecked[0]["error"].lower()
    with pytest.raises(Exception, match="404"):
        get(new_cluster, f"/api/v1/namespaces/{ns}")
    assert not list(store.list("dry/import/"))  # no progress, no lock


def test_second_import_refuses_while_the_first_holds_the_lock(new_cluster, store, cleanup):
    ns = unique("imp-lock")
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup))
    write_snapshot(store, "locked", c)
    delete_quietly(new_cluster.client, LEASE)

    def hold(renewed: float) -> None:
        delete_quietly(new_cluster.client, LEASE)
        new_cluster.client.request("POST", LEASE.rsplit("/", 1)[0], body={
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": NAME, "annotations": {HOLDER_ANNOTATION: json.dumps(
                {"host": "other-laptop", "pid": 4242, "snapshot": "prod-1",
                 "store": "s3://bucket"})}},
            "spec": {"holderIdentity": "other-laptop/4242/1", "leaseDurationSeconds": 30,
                     "renewTime": micro_time(renewed)}})

    try:
        hold(time.time())
        with pytest.raises(LockHeld, match="other-laptop pid 4242"):
            import_snapshot(SnapshotReader(store, "locked"), new_cluster.client, ImportOptions())
        result = CliRunner().invoke(cli, ["import", "locked", "--store", store.url, "--to",
                                          new_cluster.context, "--kubeconfig",
                                          new_cluster.kubeconfig])
        assert result.exit_code == 8 and "another import" in result.stderr
        hold(time.time() - 120)  # its holder died two minutes ago: the lock has expired
        report = import_snapshot(SnapshotReader(store, "locked"), new_cluster.client,
                                 ImportOptions())
        assert not report.partial
        with pytest.raises(Exception, match="404"):
            get(new_cluster, LEASE)  # released at the end
    finally:
        delete_quietly(new_cluster.client, LEASE)


def test_include_namespace_takes_its_volumes_and_leaves_other_namespaces(new_cluster, store,
                                                                        cleanup):
    keep, other = unique("imp-keep"), unique("imp-other")
    suffix = keep.split("-")[-1]
    cleanup.append(f"/api/v1/persistentvolumes/pv-{suffix}")
    c = Contents()
    c.add(NAMESPACES, namespace(keep, cleanup))
    c.add(NAMESPACES, namespace(other, cleanup))
    c.add(CONFIGMAPS, configmap(keep, "a"))
    c.add(CONFIGMAPS, configmap(other, "b"))
    c.add(PVS, {"metadata": {"name": f"pv-{suffix}"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": "/tmp/x"}, "claimRef": {"namespace": keep, "name": "c"}}})
    write_snapshot(store, "scoped", c)
    report = import_snapshot(SnapshotReader(store, "scoped"), new_cluster.client,
                             ImportOptions(scope=Scope(include_namespaces=(keep,))))
    assert report.to_dict()["totals"]["created"] == 3
    get(new_cluster, f"/api/v1/persistentvolumes/pv-{suffix}")
    with pytest.raises(Exception, match="404"):
        get(new_cluster, f"/api/v1/namespaces/{other}")


def test_objects_a_gitops_tool_manages_are_left_to_it(new_cluster, store, cleanup):
    ns = unique("imp-gitops")
    c = Contents()
    c.add(NAMESPACES, namespace(ns, cleanup))
    argo = configmap(ns, "from-argo")
    argo["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:x/y"}
    flux = configmap(ns, "from-flux")
    flux["metadata"]["labels"] = {"kustomize.toolkit.fluxcd.io/name": "shop"}
    for obj in (argo, flux, configmap(ns, "ours")):
        c.add(CONFIGMAPS, obj)
    write_snapshot(store, "gitops", c)
    report = import_snapshot(SnapshotReader(store, "gitops"), new_cluster.client,
                             ImportOptions(leave_to_gitops=True))
    totals = report.to_dict()["totals"]
    assert (totals["created"], totals["leftToGitops"], totals["failed"]) == (2, 2, 0)
    get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/ours")
    for name in ("from-argo", "from-flux"):
        with pytest.raises(Exception, match="404"):
            get(new_cluster, f"/api/v1/namespaces/{ns}/configmaps/{name}")

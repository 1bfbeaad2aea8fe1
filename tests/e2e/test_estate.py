"""A realistic 1.21 estate migrated to 1.33 as a new user would: two namespaces applied with
the 1.21 kubectl at the versions 1.21 served (``tests/estate``), then ``migrator export``,
``transform`` (storage class, registry and pod CIDR rules, Pod Security labels), ``import``
and ``verify``. Each assertion is one of the defects a run like this once had: a webhook
without sideEffects refused by the new cluster, a custom resource's fields pruned, an
explicit nodePort replaced by a random one, verify failing on a database that never started
on the old cluster either, and a renamed storage class compared with the target's own.
"""
from __future__ import annotations

import json
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import ApiError
from tests.integration.import_snapshots import delete_quietly
from tests.waiting import wait_until

ESTATE = Path(__file__).resolve().parents[1] / "estate"
PART_OF = "app.kubernetes.io/part-of"
ENFORCE = "pod-security.kubernetes.io/enforce"


def _render(path: Path, prefix: str, node_port: int) -> str:
    return path.read_text().replace("NODEPORT", str(node_port)).replace("NS", prefix)


def _apply(kubectl: str, cluster, manifest: str) -> None:
    subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, "--context", cluster.context,
                    "apply", "-f", "-"], input=manifest, text=True, check=True,
                   capture_output=True)


def _get(cluster, path: str) -> dict[str, Any] | None:
    try:
        return cluster.client.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def estate(old_cluster, new_cluster, proving_ground) -> Iterator[tuple[str, int]]:
    """The estate applied on old (its claim Pending, its workloads observed), and the new
    cluster's own storage class ``<prefix>-fast``; (prefix, the chosen node port). Removed
    from both clusters afterwards."""
    prefix = f"e{uuid.uuid4().hex[:6]}"
    node_port = random.randint(30000, 32767)
    kubectl = proving_ground["clusters"]["old"]["kubectl"]
    cluster_scoped = [
        f"/apis/storage.k8s.io/v1/storageclasses/{prefix}-standard",
        f"/apis/storage.k8s.io/v1/storageclasses/{prefix}-fast",
        f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{prefix}-policy",
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/carts.{prefix}.migrator.test",
    ]
    try:
        new_cluster.client.request("POST", "/apis/storage.k8s.io/v1/storageclasses", body={
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": f"{prefix}-fast"}, "provisioner": "example.com/the-new-one",
            "parameters": {"tier": "new"}})
        _apply(kubectl, old_cluster, _render(ESTATE / "estate.yaml", prefix, node_port))
        wait_until("the cart CRD served", lambda: _get(
            old_cluster, f"/apis/{prefix}.migrator.test/v1/namespaces/{prefix}-shop/carts"),
            timeout=60, ignore=(ApiError,))
        _apply(kubectl, old_cluster, _render(ESTATE / "cart.yaml", prefix, node_port))
        claim = f"/api/v1/namespaces/{prefix}-data/persistentvolumeclaims/data-db-0"
        wait_until("the database's claim made (and left Pending)",
                   lambda: (_get(old_cluster, claim) or {}).get("status", {}).get("phase"),
                   timeout=60)
        wait_until("the database observed by its controller", lambda: "replicas" in (_get(
            old_cluster, f"/apis/apps/v1/namespaces/{prefix}-data/statefulsets/db") or {}).get(
            "status", {}), timeout=60)
        yield prefix, node_port
    finally:
        for cluster in (old_cluster, new_cluster):
            for path in cluster_scoped:
                delete_quietly(cluster.client, path)
            for namespace in ("shop", "data"):
                delete_quietly(cluster.client, f"/api/v1/namespaces/{prefix}-{namespace}")


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    data = None
    if "-o" in args:
        try:
            data = json.loads(result.output)
        except ValueError:
            data = None
    return result, data


def test_a_1_21_estate_arrives_whole(estate, old_cluster, new_cluster, tmp_path: Path) -> None:
    prefix, node_port = estate
    store, k = str(tmp_path / "snapshots"), ("--kubeconfig", new_cluster.kubeconfig)
    scope = ("--include-namespace", f"{prefix}-shop", "--include-namespace", f"{prefix}-data",
             "--cluster-scoped", "--selector", f"{PART_OF}={prefix}")
    exported, export = run("export", "--from", "old", "--to", "new", *k, "--store", store,
                           "--id", "estate", *scope, "-o", "json")
    assert exported.exit_code == 0, exported.output
    services = next(r for r in export["resources"] if r["resource"] == "services")
    assert services["kept"] == [
        f"{prefix}-shop/web: port 80/TCP nodePort {node_port}: set by kubectl-client-side-apply"]
    transformed, transform = run(
        "transform", "estate", "--store", store, "--to", "new", *k, "--id", "estate-new",
        "--storage-class", f"{prefix}-standard={prefix}-fast",
        "--registry", "registry.old.example=registry.new.example",
        "--pod-cidr", "10.244.0.0/16=10.248.0.0/16", "--pod-security-labels", "-o", "json")
    assert transformed.exit_code == 0, transformed.output
    levels = {ns: v["level"] for ns, v in transform["podSecurity"]["namespaces"].items()}
    assert levels == {f"{prefix}-shop": "baseline", f"{prefix}-data": "privileged"}
    imported, _ = run("import", "estate-new", "--store", store, "--to", "new", *k, "-o", "json")
    assert imported.exit_code == 0, imported.output  # nothing refused, the webhook included

    webhook = _get(new_cluster, "/apis/admissionregistration.k8s.io/v1/"
                                f"validatingwebhookconfigurations/{prefix}-policy")
    assert webhook is not None and webhook["webhooks"][0]["sideEffects"] == "NoneOnDryRun"
    cart = _get(new_cluster, f"/apis/{prefix}.migrator.test/v1/namespaces/{prefix}-shop/carts/"
                             "basket")
    assert cart is not None and cart["spec"] == {
        "items": 3, "extra": "a field the schema does not name", "coupon": {"code": "SPRING"}}
    service = _get(new_cluster, f"/api/v1/namespaces/{prefix}-shop/services/web")
    assert service is not None and service["spec"]["ports"][0]["nodePort"] == node_port
    assert service["spec"]["ports"][1]["nodePort"]  # allocated anew by the new cluster
    fast = _get(new_cluster, f"/apis/storage.k8s.io/v1/storageclasses/{prefix}-fast")
    assert fast is not None and fast["provisioner"] == "example.com/the-new-one"  # the target's
    for namespace, level in levels.items():
        labels = (_get(new_cluster, f"/api/v1/namespaces/{namespace}") or {})["metadata"]["labels"]
        assert labels[ENFORCE] == level and labels[f"{ENFORCE}-version"] == "v1.33"

    verified, verify = run("verify", "estate-new", "--store", store, "--to", "new", *k,
                           "--wait", "120", "-o", "json")
    assert verified.exit_code == 0, verified.output
    assert verify["differing"] == [] and verify["notReady"] == []
    assert [(o["kind"], o["name"]) for o in verify["notCompared"]] == [
        ("StorageClass", f"{prefix}-fast")]
    as_before = sorted((o["kind"], o["name"]) for o in verify["notReadyAsOnSource"])
    assert as_before == [("PersistentVolumeClaim", "data-db-0"), ("StatefulSet", "db")]
    assert verify["totals"]["ready"] >= 3  # web, agent, the CRD

"""Golden flow: a small 1.21-era app applied with the old release's kubectl at the versions of
its day, exported, transformed and imported into new; what new then holds matches the golden
manifests in ``tests/golden/expected`` (see :mod:`tests.e2e.golden`).
"""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import ApiError
from migrator.kube import iter_items
from tests.e2e.golden import INPUT, check, kubectl_apply, normalise, render

PART_OF = "app.kubernetes.io/part-of"
# Where the app's objects are read in new: the versions new serves ({ns}: the namespace).
TYPES = (
    ("v1", "Namespace", "/api/v1/namespaces"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition",
     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
    ("v1", "ConfigMap", "/api/v1/namespaces/{ns}/configmaps"),
    ("v1", "Secret", "/api/v1/namespaces/{ns}/secrets"),
    ("apps/v1", "Deployment", "/apis/apps/v1/namespaces/{ns}/deployments"),
    ("v1", "Service", "/api/v1/namespaces/{ns}/services"),
    ("networking.k8s.io/v1", "Ingress", "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
    ("autoscaling/v2", "HorizontalPodAutoscaler",
     "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget", "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
    ("batch/v1", "CronJob", "/apis/batch/v1/namespaces/{ns}/cronjobs"),
    ("{ns}.migrator.test/v1", "Cart", "/apis/{ns}.migrator.test/v1/namespaces/{ns}/carts"),
)


def _delete(cluster, path: str) -> None:
    try:
        cluster.client.request("DELETE", path)
    except ApiError as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def app(old_cluster, new_cluster, proving_ground) -> Iterator[str]:
    """The app applied on old by kubectl 1.21; its namespace. Removed from both clusters."""
    ns = f"golden-{uuid.uuid4().hex[:8]}"
    kubectl = proving_ground["clusters"]["old"]["kubectl"]
    crd = f"carts.{ns}.migrator.test"
    try:
        kubectl_apply(kubectl, old_cluster.kubeconfig, "old", render(INPUT / "app.yaml", ns))
        subprocess.run([kubectl, "--kubeconfig", old_cluster.kubeconfig, "--context", "old",
                        "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"],
                       check=True, capture_output=True)
        kubectl_apply(kubectl, old_cluster.kubeconfig, "old", render(INPUT / "custom.yaml", ns))
        yield ns
    finally:
        for cluster in (old_cluster, new_cluster):
            _delete(cluster, f"/api/v1/namespaces/{ns}")
            _delete(cluster, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")


def run(s3, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=s3.env())


def read_app(new_cluster, ns: str) -> list[dict[str, Any]]:
    """Every object of the app in new (by its part-of label), with apiVersion and kind."""
    query = {"labelSelector": f"{PART_OF}={ns}"}
    return [{"apiVersion": api_version.format(ns=ns), "kind": kind, **obj}
            for api_version, kind, path in TYPES
            for obj in iter_items(new_cluster.client, path.format(ns=ns), query=query)]


def test_golden_flow(old_cluster, new_cluster, app, s3):
    ns, store = app, f"s3://{s3.bucket}/snapshots"
    k = ("--kubeconfig", new_cluster.kubeconfig)
    exported = run(s3, "export", "--from", "old", *k, "--store", store, "--to", "new",
                   "--id", "golden", "--include-namespace", ns, "--cluster-scoped",
                   "--selector", f"{PART_OF}={ns}", "-o", "json")
    assert exported.exit_code == 0, exported.output
    transformed = run(s3, "transform", f"{store}/golden", "--to", "new", *k,
                      "--id", "golden-new", "-o", "json")
    assert transformed.exit_code == 0, transformed.output
    imported = run(s3, "import", "golden-new", "--store", store, "--to", "new", *k, "-o", "json")
    assert imported.exit_code == 0, imported.output
    problems = check([normalise(obj, ns) for obj in read_app(new_cluster, ns)])
    assert not problems, "\n\n".join(problems)

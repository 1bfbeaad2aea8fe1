"""`migrator transform` and `check-apis` against the proving ground.

Deprecated objects are created on `old` and read back at their deprecated versions into a
snapshot (as an old cluster that serves nothing newer would export them); the transform must
put them in their new resources, leave the source alone, and `new` must accept the result in
a server-side dry-run, or reject it with its own message when a rule breaks an object.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.export import strips
from migrator.resources.types import ResourceType
from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import open_store

pytestmark = pytest.mark.integration

# (group, version, resource, kind, body) created on old at the deprecated version.
DEPRECATED: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("extensions", "v1beta1", "ingresses", "Ingress", {
        "metadata": {"name": "web"},
        "spec": {"backend": {"serviceName": "web", "servicePort": 80},
                 "rules": [{"host": "shop.example.com", "http": {"paths": [
                     {"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}}]}}]}}),
    ("batch", "v1beta1", "cronjobs", "CronJob", {
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "job", "image": "registry.old/tools/backup:1"}]}}}}}}),
    ("policy", "v1beta1", "poddisruptionbudgets", "PodDisruptionBudget", {
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
]
NEW_HOMES = {("networking.k8s.io", "v1", "ingresses"), ("batch", "v1", "cronjobs"),
             ("policy", "v1", "poddisruptionbudgets")}


def _path(group: str, version: str, resource: str, namespace: str) -> str:
    return f"/apis/{group}/{version}/namespaces/{namespace}/{resource}"


@pytest.fixture
def deprecated_snapshot(old_cluster, old_namespace, tmp_path: Path) -> tuple[Path, str, str]:
    """A local store holding snapshot ``src`` of the deprecated objects at their old versions."""
    store = tmp_path / "store"
    writer = SnapshotWriter(open_store(str(store)), "src")
    for group, version, resource, kind, body in DEPRECATED:
        path = _path(group, version, resource, old_namespace)
        old_cluster.client.request("POST", path,
                                   body={"apiVersion": f"{group}/{version}", "kind": kind, **body})
        rtype = ResourceType(group, version, resource, kind, True)
        with writer.resource(group, version, resource, kind, True) as out:
            for obj in old_cluster.client.request("GET", path)["items"]:
                obj.setdefault("apiVersion", f"{group}/{version}")
                obj.setdefault("kind", kind)
                obj, _removed, aside, _kept = strips.strip(obj, rtype)
                out.write(obj, aside)
    writer.commit(source={"context": "old"})
    return store, "src", old_namespace


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def transform(proving_ground: dict, store: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["transform", f"{store}/src", "--to", "new",
                                    "--kubeconfig", proving_ground["kubeconfig"], *args])


def test_transform_converts_validates_and_leaves_the_source(
        proving_ground, deprecated_snapshot, new_namespace, tmp_path: Path) -> None:
    store, _src, namespace = deprecated_snapshot
    before = checksums(store / "src")
    report_file = tmp_path / "report.json"
    result = transform(proving_ground, store, "--id", "dst", "--validate", "-o", "json",
                       "--namespace-map", f"{namespace}={new_namespace}",
                       "--registry", "registry.old=registry.new", "--report", str(report_file))
    assert result.exit_code == 0, result.output
    assert checksums(store / "src") == before
    report = json.loads(result.stdout)
    assert report["validation"]["outcomes"] == {"accepted": 3}, report["validation"]
    assert report["totals"]["written"] == 3 and report["totals"]["dropped"] == 0
    assert json.loads(report_file.read_text()) == report

    out = SnapshotReader(open_store(str(store)), "dst")
    assert out.manifest["parent"] == "src"
    assert out.manifest["target"]["context"] == "new"
    homes = {(e["group"], e["version"], e["resource"]): e for e in out.resources()}
    assert set(homes) == NEW_HOMES
    ingress = next(out.iter_objects(homes[("networking.k8s.io", "v1", "ingresses")]))
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["namespace"] == new_namespace
    assert ingress["spec"]["defaultBackend"] == {"service": {"name": "web", "port": {"number": 80}}}
    cron = next(out.iter_objects(homes[("batch", "v1", "cronjobs")]))
    image = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.new/tools/backup:1"


def test_validate_reports_the_servers_rejection(proving_ground, deprecated_snapshot,
                                                new_namespace, tmp_path: Path) -> None:
    store, _src, namespace = deprecated_snapshot
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: break it\n    match: {kind: Ingress}\n"
                     "    set: {/spec/rules/0/host: 'Not_A_Valid_Host!'}\n")
    result = transform(proving_ground, store, "--id", "broken", "--validate", "--rules",
                       str(rules), "--namespace-map", f"{namespace}={new_namespace}")
    assert result.exit_code == 1, result.output
    assert "Not_A_Valid_Host!" in result.stdout and "Invalid" in result.stdout
    assert "rejected 1 transformed object" in result.stderr


def test_bad_rules_file_fails_before_reading(proving_ground, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {kind: Ingress}\n    patch: [{op: add, path: /x}]\n")
    result = transform(proving_ground, tmp_path / "no-such-store", "--rules", str(rules))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {rules}: rule 1: patch[0].value: missing")


def test_check_apis_lists_the_deprecated_objects(proving_ground, deprecated_snapshot) -> None:
    _store, _src, namespace = deprecated_snapshot
    result = CliRunner().invoke(cli, ["check-apis", "--from", "old", "--to", "new",
                                      "--kubeconfig", proving_ground["kubeconfig"], "-o", "json"])
    report = json.loads(result.stdout)
    mine = {(c["object"]["kind"], c["writtenVia"]["groupVersion"]): c
            for c in report["objects"] if c["object"].get("namespace") == namespace}
    assert set(mine) == {("Ingress", "extensions/v1beta1"), ("CronJob", "batch/v1beta1"),
                         ("PodDisruptionBudget", "policy/v1beta1")}
    assert mine[("Ingress", "extensions/v1beta1")]["becomes"] == "networking.k8s.io/v1 Ingress"
    assert result.exit_code == (1 if report["needsPerson"] else 0)


def test_check_apis_on_a_snapshot(proving_ground, deprecated_snapshot) -> None:
    store, _src, _namespace = deprecated_snapshot
    result = CliRunner().invoke(cli, ["check-apis", "--snapshot", f"{store}/src",
                                      "--to-version", "1.33"])
    assert "Ingress" in result.stdout and "networking.k8s.io/v1" in result.stdout
    assert result.exit_code in (0, 1) and "Traceback" not in result.output

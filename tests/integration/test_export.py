"""`migrator export` against the proving ground: a rich population exported to a local
directory and to MinIO, each object once, at the right version, skips and strips with reasons,
encryption, tampering, and the snapshot commands."""
from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import DecryptionError, SnapshotCorrupt
from migrator.kube import iter_items
from migrator.kube.discovery import group_version_path
from migrator.snapshot import SnapshotReader
from migrator.store import open_store
from tests.populate import BINARY, SECRET_PLAINTEXT, Population, populate

pytestmark = pytest.mark.integration

KEY_HEX = "8f" * 32


@pytest.fixture(scope="module")
def population(old_cluster) -> Iterator[Population]:
    """One rich population on the old cluster for the whole module (it takes a while)."""
    pop = populate(old_cluster.client)
    yield pop
    pop.cleanup()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def export_args(old_cluster, pop: Population, to: str, *extra: str) -> list[str]:
    return ["export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig, "--store", to,
            "--include-namespace", pop.namespace, "--cluster-scoped", "-o", "json", *extra]


def objects(reader: SnapshotReader) -> dict[str, list[dict[str, Any]]]:
    """Every object of the snapshot by ``resource[.group]``."""
    return {
        (f"{e['resource']}.{e['group']}" if e["group"] else e["resource"]):
        list(reader.iter_objects(e))
        for e in reader.resources()
    }


def names(items: list[dict[str, Any]], namespace: str | None = None) -> list[str]:
    return sorted(o["metadata"]["name"] for o in items
                  if namespace is None or o["metadata"].get("namespace") == namespace)


@pytest.fixture(scope="module")
def local_export(old_cluster, population, tmp_path_factory) -> tuple[dict, SnapshotReader]:
    """The population exported with the CLI to a local directory (no target)."""
    root = tmp_path_factory.mktemp("snapshots")
    result = run(*export_args(old_cluster, population, str(root), "--id", "local"))
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout), SnapshotReader(open_store(str(root)), "local")


def test_each_object_exported_once_counts_match_a_direct_list(
    old_cluster, population, local_export
):
    report, reader = local_export
    ns = population.namespace
    by_type = objects(reader)
    for entry in report["resources"]:
        if entry["state"] != "exported" or not entry["namespaced"]:
            continue
        path = group_version_path(entry["groupVersion"])
        resource = entry["resource"].split(".")[0]
        direct = list(iter_items(old_cluster.client, f"{path}/namespaces/{ns}/{resource}"))
        assert entry["listed"] == len(direct), entry["resource"]
        assert entry["exported"] + sum(entry["skipped"].values()) == entry["listed"]
        stored = by_type.get(entry["resource"], [])
        assert len(stored) == entry["exported"], entry["resource"]
        identities = [(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in stored]
        assert len(identities) == len(set(identities)), entry["resource"]
    # Served under several groups, exported once: the extensions/v1beta1 Ingress is in
    # networking.k8s.io/v1 only, the v1beta1 CronJob in batch/v1, events nowhere.
    assert names(by_type["ingresses.networking.k8s.io"], ns) == ["current", "legacy"]
    assert not [k for k in by_type if k.endswith(".extensions") or k.startswith("events")]
    assert names(by_type["deployments.apps"], ns) == ["api", "web"]
    assert names(by_type["cronjobs.batch"], ns) == ["nightly"]
    ingress = next(e for e in report["resources"] if e["resource"] == "ingresses.networking.k8s.io")
    assert "extensions/v1beta1" in ingress["aliases"]
    # Every object made is there, custom resources and their CRDs included.
    for made in population.created:
        key = made.resource if "/" not in made.group_version else (
            f"{made.resource}.{made.group_version.rpartition('/')[0]}")
        if made.group_version.startswith("extensions/"):
            key = f"{made.resource}.networking.k8s.io"
        stored = by_type.get(key, [])
        assert made.name in names(stored, made.namespace), (key, made.name)


def test_versions_without_target_are_the_sources_preferred(local_export):
    report, _reader = local_export
    versions = {e["resource"]: e["groupVersion"] for e in report["resources"]}
    assert versions["horizontalpodautoscalers.autoscaling"] == "autoscaling/v2beta2"
    assert versions["ingresses.networking.k8s.io"] == "networking.k8s.io/v1"
    assert versions["cronjobs.batch"] == "batch/v1"
    assert versions["poddisruptionbudgets.policy"] == "policy/v1"
    assert versions["podsecuritypolicies.policy"] == "policy/v1beta1"
    assert versions["customresourcedefinitions.apiextensions.k8s.io"] == "apiextensions.k8s.io/v1"


def count(cluster, path: str, test=lambda obj: True) -> int:
    """How many objects a direct list of ``path`` holds that pass ``test``."""
    return sum(1 for obj in iter_items(cluster.client, path) if test(obj))


def controlled(obj: dict[str, Any]) -> bool:
    return any(ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or ())


def labelled(key: str, value: str | None = None):
    def test(obj: dict[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return key in labels and (value is None or labels[key] == value)
    return test


def test_skips_have_the_right_reasons(old_cluster, local_export, population):
    report, reader = local_export
    ns = population.namespace
    entries = {e["resource"]: e for e in report["resources"]}
    assert entries["serviceaccounts"]["skipped"] == {"default-service-account": 1}
    assert entries["secrets"]["skipped"] == {"service-account-token": 2}
    assert entries["configmaps"]["skipped"] == {"root-ca-configmap": 1}
    assert entries["pods"]["skipped"]["owned-by-controller"] == count(
        old_cluster, f"/api/v1/namespaces/{ns}/pods", controlled)
    assert entries["replicasets.apps"]["skipped"] == {"owned-by-controller": 2}  # web, api
    assert entries["endpoints"]["skipped"]["controller-endpoints"] == count(
        old_cluster, f"/api/v1/namespaces/{ns}/endpoints") - 1  # all but "manual"
    assert set(entries["endpointslices.discovery.k8s.io"]["skipped"]) == {
        "controller-endpointslice"}
    assert entries["namespaces"]["skipped"]["system-namespace"] == 3
    assert entries["apiservices.apiregistration.k8s.io"]["skipped"]["automanaged-apiservice"] == (
        count(old_cluster, "/apis/apiregistration.k8s.io/v1/apiservices",
              labelled("kube-aggregator.kubernetes.io/automanaged")))
    assert entries["clusterroles.rbac.authorization.k8s.io"]["skipped"]["bootstrap-rbac"] == (
        count(old_cluster, "/apis/rbac.authorization.k8s.io/v1/clusterroles",
              labelled("kubernetes.io/bootstrapping", "rbac-defaults")))
    assert entries["priorityclasses.scheduling.k8s.io"]["skipped"] == {
        "system-priority-class": 2}
    assert entries["flowschemas.flowcontrol.apiserver.k8s.io"]["skipped"]["builtin-flow-control"]
    for left_out in ("events", "nodes", "leases.coordination.k8s.io",
                     "controllerrevisions.apps", "componentstatuses"):
        assert entries[left_out]["state"] == "skipped" and entries[left_out]["skipRule"]
    assert entries["nodes"]["existing"] == count(old_cluster, "/api/v1/nodes")
    assert entries["controllerrevisions.apps"]["existing"] == count(  # DaemonSet + StatefulSet
        old_cluster, f"/apis/apps/v1/namespaces/{ns}/controllerrevisions")
    # What is skipped is not in the snapshot; the user's own look-alikes are.
    by_type = objects(reader)
    assert names(by_type["serviceaccounts"]) == ["app"]
    assert names(by_type["secrets"]) == ["credentials", "registry"]
    assert names(by_type["replicasets.apps"]) == ["lonely"]
    assert names(by_type["pods"]) == ["standalone"]
    assert names(by_type["endpoints"]) == ["manual"]  # the selector-less Service's
    assert names(by_type["namespaces"]) == [population.namespace]
    assert all(r in report["legend"] for e in report["resources"] for r in e["skipped"])


def test_strips_have_the_right_reasons(local_export, population):
    report, reader = local_export
    by_type = objects(reader)
    for key, items in by_type.items():
        for obj in items:
            meta = obj["metadata"]
            assert not {"uid", "resourceVersion", "creationTimestamp", "managedFields",
                        "selfLink", "generation"} & meta.keys(), key
            assert "status" not in obj, key
    services = {o["metadata"]["name"]: o["spec"] for o in by_type["services"]}
    assert services["db"]["clusterIP"] == "None"  # headless stays headless
    assert all("clusterIP" not in s and "clusterIPs" not in s
               for n, s in services.items() if n != "db")
    assert all("nodePort" not in p for s in services.values() for p in s.get("ports", []))
    assert "healthCheckNodePort" not in services["web-lb"]
    assert services["external"]["externalName"] == "db.example.com"
    pvs = [o for o in by_type["persistentvolumes"] if o["metadata"]["name"].startswith("pop-")]
    assert {pv["spec"]["claimRef"]["name"] for pv in pvs} == {"claim-1", "claim-2"}
    assert all("uid" not in pv["spec"]["claimRef"] for pv in pvs)
    claims = {o["metadata"]["name"]: o for o in by_type["persistentvolumeclaims"]}
    assert claims["claim-1"]["spec"]["volumeName"].endswith("-pv1")
    assert "pv.kubernetes.io/bind-completed" not in claims["claim-1"]["metadata"].get(
        "annotations", {})
    assert "nodeName" not in by_type["pods"][0]["spec"]
    sts = by_type["statefulsets.apps"][0]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    # Owner references are kept for the importer to relink.
    entries = {e["resource"]: e for e in report["resources"]}
    assert entries["services"]["stripped"]["spec.clusterIP(s)"] == 4  # not headless, ExternalName
    assert entries["services"]["stripped"]["spec.ports[].nodePort"] == 2
    assert entries["persistentvolumes"]["stripped"]["spec.claimRef.uid/resourceVersion"] == sum(
        1 for pv in by_type["persistentvolumes"] if pv["spec"].get("claimRef"))
    # Status is kept aside where it matters: PVs and custom resources.
    pv_entry = reader.find("", "v1", "persistentvolumes")
    aside = {a["name"]: a["status"] for a in reader.iter_aside(pv_entry)}
    assert all(aside[pv["metadata"]["name"]]["phase"] == "Bound" for pv in pvs)
    widgets = reader.find(population.crd_group, "v1", "widgets")
    assert sorted(a["status"]["observed"] for a in reader.iter_aside(widgets)) == [1, 2]
    assert [o["spec"]["size"] for o in reader.iter_objects(widgets)] == [1, 2]


def test_binary_data_survives_exactly(local_export):
    _report, reader = local_export
    by_type = objects(reader)
    secret = next(o for o in by_type["secrets"] if o["metadata"]["name"] == "credentials")
    assert base64.b64decode(secret["data"]["key.bin"]) == BINARY
    assert base64.b64decode(secret["data"]["password"]).decode() == SECRET_PLAINTEXT
    configmap = next(o for o in by_type["configmaps"] if o["metadata"]["name"] == "settings")
    assert base64.b64decode(configmap["binaryData"]["blob.bin"]) == BINARY
    assert configmap["data"]["greeting"] == "héllo wörld"


def test_manifest_records_source_discovery_and_counts(local_export, old_cluster):
    report, reader = local_export
    manifest = reader.manifest
    assert manifest["source"]["serverVersion"] == "v" + old_cluster.version
    assert "extensions/v1beta1" in [v for g in manifest["discovery"]["groups"]
                                    for v in g["versions"]]
    assert manifest["discovery"]["resources"]["apps/v1"]
    assert manifest["export"]["totals"] == report["totals"]
    assert sum(e["objects"] for e in manifest["resources"]) == report["totals"]["exported"]
    assert all(p["sha256"] for e in manifest["resources"] for p in e["parts"])


def test_export_to_minio_with_target_reads_newest_common_versions(
    old_cluster, new_cluster, population, s3
):
    url = f"s3://{s3.bucket}/snaps"
    env = {**s3.env(), "AWS_ENDPOINT_URL_S3": ""}
    args = export_args(old_cluster, population, url, "--to", "new", "--id", "s3-snap",
                       "--s3-endpoint", s3.endpoint)
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    versions = {e["resource"]: e["groupVersion"] for e in report["resources"]}
    assert versions["ingresses.networking.k8s.io"] == "networking.k8s.io/v1"
    assert versions["cronjobs.batch"] == "batch/v1"
    assert versions["poddisruptionbudgets.policy"] == "policy/v1"
    assert versions["endpointslices.discovery.k8s.io"] == "discovery.k8s.io/v1"
    # No v2* HPA version is common: the newest the source has, never autoscaling/v1.
    assert versions["horizontalpodautoscalers.autoscaling"] == "autoscaling/v2beta2"
    assert versions["podsecuritypolicies.policy"] == "policy/v1beta1"  # gone from new
    discovered = run("discover", "--kubeconfig", new_cluster.kubeconfig, "--from", "new",
                     "-o", "json")
    served_by_new = set(json.loads(discovered.stdout)["clusters"][0]["groupVersions"])
    not_common = {k.split(".")[0] for k, v in versions.items() if v not in served_by_new}
    # Only where the new cluster serves no version of the kind (or no v2* HPA in common).
    assert not_common <= {"horizontalpodautoscalers", "podsecuritypolicies", "flowschemas",
                          "prioritylevelconfigurations", "csistoragecapacities", "widgets",
                          "gadgets"}, not_common

    listed = run("snapshot", "list", "--store", url, "--s3-endpoint", s3.endpoint, "-o", "json", env=env)
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.stdout)
    assert entry["id"] == "s3-snap" and entry["complete"]
    assert entry["objects"] == report["totals"]["exported"]
    verified = run("snapshot", "verify", "s3-snap", "--store", url, "--s3-endpoint", s3.endpoint, env=env)
    assert verified.exit_code == 0, verified.output
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert "snaps/s3-snap/manifest.json" in keys
    assert "snaps/s3-snap/resources/networking.k8s.io/v1/ingresses/part-00000.jsonl.gz" in keys


def test_encrypted_snapshot_unreadable_without_the_key(old_cluster, population, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY_HEX)
    root = tmp_path / "snaps"
    result = run(*export_args(old_cluster, population, str(root), "--id", "enc",
                              "--key-file", str(key_file)))
    assert result.exit_code == 0, result.output + result.stderr
    needles = [SECRET_PLAINTEXT.encode(), base64.b64encode(SECRET_PLAINTEXT.encode())]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
            if "part-" in path.name:
                assert path.name.endswith(".enc")
    store = open_store(str(root))
    reader = SnapshotReader(store, "enc")
    assert reader.manifest["encryption"]["algorithm"] == "AES-256-GCM"
    with pytest.raises(DecryptionError):
        list(reader.iter_objects(reader.find("", "v1", "secrets")))
    with pytest.raises(DecryptionError):
        SnapshotReader(store, "enc", key=bytes.fromhex("11" * 32))
    keyed = SnapshotReader(store, "enc", key=bytes.fromhex(KEY_HEX))
    secrets = list(keyed.iter_objects(keyed.find("", "v1", "secrets")))
    assert SECRET_PLAINTEXT in [base64.b64decode(s["data"].get("password", "")).decode()
                                for s in secrets]
    # verify checks checksums without the key, and decodes everything with it.
    assert run("snapshot", "verify", "enc", "--store", str(root)).exit_code == 0
    with_key = run("snapshot", "verify", "enc", "--store", str(root), "--key-file", str(key_file))
    assert with_key.exit_code == 0 and "objects decoded" in with_key.stdout
    wrong = tmp_path / "wrong"
    wrong.write_text("11" * 32)
    bad = run("snapshot", "verify", "enc", "--store", str(root), "--key-file", str(wrong))
    assert bad.exit_code != 0 and "wrong key" in bad.stderr
    assert KEY_HEX not in bad.stderr + bad.stdout + result.stdout + result.stderr


def test_tampered_part_detected_by_verify_and_by_reading(local_export, tmp_path):
    _report, original = local_export
    root = tmp_path / "copy"
    shutil.copytree(original.store.root, root)
    store = open_store(str(root))
    reader = SnapshotReader(store, "local")
    entry = reader.find("", "v1", "configmaps")
    part = root / "local" / entry["parts"][0]["key"]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    result = run("snapshot", "verify", "local", "--store", str(root))
    assert result.exit_code != 0
    assert entry["parts"][0]["key"] in result.stdout and "sha256" in result.stdout
    with pytest.raises(SnapshotCorrupt) as err:
        list(SnapshotReader(store, "local").iter_objects(entry))
    assert err.value.part == entry["parts"][0]["key"]


def test_snapshot_show_and_text_report(old_cluster, population, tmp_path):
    root = tmp_path / "snaps"
    result = run("export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig, "--store",
                 str(root), "--include-namespace", population.namespace, "--id", "shown")
    assert result.exit_code == 0, result.output + result.stderr
    assert "Snapshot shown" in result.stdout and "owned-by-controller" in result.stdout
    assert "created by its controller" in result.stdout  # the reason, not just the rule
    shown = run("snapshot", "show", "shown", "--store", str(root))
    assert shown.exit_code == 0, shown.output
    assert "deployments.apps" in shown.stdout and "v1.21" in shown.stdout
    again = run("export", "--from", "old", "--kubeconfig", old_cluster.kubeconfig, "--store",
                str(root), "--include-namespace", population.namespace, "--id", "shown")
    assert again.exit_code != 0 and "--restart" in again.stderr
    assert run("snapshot", "show", "nope", "--store", str(root)).exit_code != 0


def test_secret_values_never_in_the_report(local_export):
    report, _reader = local_export
    text = json.dumps(report)
    assert SECRET_PLAINTEXT not in text
    assert base64.b64encode(SECRET_PLAINTEXT.encode()).decode() not in text


"""Listing against the real API server: a continue token that expires because etcd was
compacted mid-list (410), a resource type the user may not list (403), and a huge type read
namespace by namespace in parallel.

The page loop and the restart logic are unit-tested on plain data
(tests/unit/test_export_listing.py); here the API server and etcd produce the failures.
"""
from __future__ import annotations

import base64
import datetime
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migrator.cli import cli
from migrator.export import ExportOptions, export_cluster
from migrator.export.runner import ListOptions, export_types
from migrator.resources.types import ResourceType
from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def compact_etcd(etcd: str) -> int:
    """Write a key (so the revision moves past any list in flight) and compact etcd up to it,
    through etcd's gRPC gateway; returns the compacted revision."""
    http = urllib3.PoolManager()
    put = http.request("POST", f"{etcd}/v3/kv/put", body=json.dumps(
        {"key": _b64("/migrator-tests/compaction-bump"), "value": _b64(uuid.uuid4().hex)}))
    assert put.status == 200, put.data
    revision = int(json.loads(put.data)["header"]["revision"])
    compacted = http.request("POST", f"{etcd}/v3/kv/compaction",
                             body=json.dumps({"revision": revision, "physical": True}))
    assert compacted.status == 200, compacted.data
    return revision


def create_configmaps(client, namespace: str, count: int) -> None:
    for i in range(count):
        client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:02d}"}, "data": {"i": str(i)}})


@pytest.mark.timeout(120)
def test_list_expired_by_etcd_compaction_is_restarted(
    old_cluster, proving_ground, make_namespace, tmp_path
) -> None:
    namespace = make_namespace(old_cluster)
    create_configmaps(old_cluster.client, namespace, 40)
    compactions: list[int] = []

    def on_progress(key: str, done: int, _total: int | None) -> None:
        if key == "configmaps" and not compactions:  # after the first page of 5
            compactions.append(compact_etcd(proving_ground["clusters"]["old"]["etcd"]))

    store = LocalStore(tmp_path)
    options = ExportOptions(include_namespaces=(namespace,), include_resources=("configmaps",),
                            page_size=5, workers=1)
    result = export_cluster(old_cluster.client, store, snapshot_id="expired", options=options,
                            on_progress=on_progress)

    assert compactions, "the export never reported a page"
    [report] = [r for r in result.report.resources if r.key == "configmaps"]
    assert report.state == "exported"
    assert report.list_restarts >= 1
    assert report.exported == 40 and report.duplicates == 0
    reader = SnapshotReader(store, "expired")
    names = [o["metadata"]["name"] for o in reader.iter_objects(reader.find("", "v1", "configmaps"))]
    assert sorted(names) == [f"cm-{i:02d}" for i in range(40)]


# -- a user who may list everything but Secrets ------------------------------------------------


def mint_client_certificate(pki: Path, user: str) -> tuple[bytes, bytes]:
    """A client certificate for ``user`` signed by the proving ground's CA: (cert, key) PEM."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_kubeconfig(admin_kubeconfig: str, cluster: str, user: str, cert: bytes, key: bytes,
                     path: Path) -> Path:
    """A kubeconfig with context ``cluster`` for ``user``: the admin's cluster entry (server
    and CA), the user's client certificate."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    [entry] = [c for c in admin["clusters"] if c["name"] == cluster]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [entry],
        "users": [{"name": user, "user": {
            "client-certificate-data": base64.b64encode(cert).decode(),
            "client-key-data": base64.b64encode(key).decode()}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }))
    return path


def all_but_secrets_rules(client) -> list[dict[str, Any]]:
    """RBAC rules granting get/list on every resource except Secrets (RBAC cannot deny, so
    the core group's resources are named one by one)."""
    core = client.request("GET", "/api/v1")["resources"]
    core_names = sorted(r["name"] for r in core if "/" not in r["name"] and r["name"] != "secrets")
    groups = sorted(g["name"] for g in client.request("GET", "/apis")["groups"])
    return [
        {"apiGroups": [""], "resources": core_names, "verbs": ["get", "list"]},
        {"apiGroups": groups, "resources": ["*"], "verbs": ["get", "list"]},
    ]


@pytest.fixture
def limited_kubeconfig(old_cluster, proving_ground, tmp_path) -> Any:
    """A kubeconfig for a user who may get/list everything but Secrets; RBAC removed after."""
    user = f"migrator-limited-{uuid.uuid4().hex[:8]}"
    client = old_cluster.client
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    client.request("POST", f"{rbac}/clusterroles", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": user}, "rules": all_but_secrets_rules(client)})
    client.request("POST", f"{rbac}/clusterrolebindings", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    pki = Path(os.environ.get("MIGRATOR_PG_DIR") or REPO / ".proving-ground") / "pki"
    cert, key = mint_client_certificate(pki, user)
    yield write_kubeconfig(proving_ground["kubeconfig"], "old", user, cert, key,
                           tmp_path / "limited.kubeconfig"), user
    client.request("DELETE", f"{rbac}/clusterrolebindings/{user}")
    client.request("DELETE", f"{rbac}/clusterroles/{user}")


@pytest.mark.timeout(120)
def test_forbidden_type_is_recorded_and_the_rest_exported(
    old_cluster, limited_kubeconfig, make_namespace, tmp_path
) -> None:
    kubeconfig, user = limited_kubeconfig
    namespace = make_namespace(old_cluster)
    create_configmaps(old_cluster.client, namespace, 3)
    old_cluster.client.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"password": "hunter2"}})
    root = tmp_path / "snaps"

    result = CliRunner().invoke(cli, [
        "export", "--from", "old", "--kubeconfig", str(kubeconfig), "--store", str(root),
        "--id", "limited", "--include-namespace", namespace, "-o", "json"])

    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    by_key = {r["resource"]: r for r in report["resources"]}
    secrets = by_key["secrets"]
    assert secrets["state"] == "failed"
    assert f'User "{user}" cannot list resource "secrets"' in secrets["error"]
    assert "hunter2" not in result.output
    assert by_key["configmaps"]["state"] == "exported" and by_key["configmaps"]["exported"] == 3
    assert all(r["state"] in ("exported", "skipped") for k, r in by_key.items() if k != "secrets")
    reader = SnapshotReader(LocalStore(root), "limited")
    assert reader.find("", "v1", "secrets") is None
    assert reader.find("", "v1", "configmaps")["objects"] == 3


# -- one huge type, read per namespace ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_huge_type_is_read_per_namespace_each_object_once(
    old_cluster, make_namespace, tmp_path
) -> None:
    namespaces = [make_namespace(old_cluster) for _ in range(3)]
    for namespace in namespaces:
        create_configmaps(old_cluster.client, namespace, 5)
    writer = SnapshotWriter(LocalStore(tmp_path), "fanout")
    requests: list[str] = []
    real_request = old_cluster.client.request_raw

    def recording(method: str, path: str, **kw: Any) -> Any:
        requests.append(path)
        return real_request(method, path, **kw)

    progress: list[tuple[int, int | None]] = []
    # Every ConfigMap of the cluster (other tests' too), read per namespace as soon as there
    # are more than 3. A label selector would narrow it, but it hides the count the
    # decision needs, and the old API server scans the whole type for each small page.
    options = ListOptions(fan_out_above=3, workers=4)
    old_cluster.client.request_raw = recording  # type: ignore[method-assign]
    try:
        [report] = export_types(old_cluster.client, writer, [CONFIGMAPS], options,
                                on_progress=lambda _k, done, total: progress.append((done, total)))
    finally:
        del old_cluster.client.request_raw
    writer.commit()

    assert report.state == "exported" and report.duplicates == 0
    assert {f"/api/v1/namespaces/{ns}/configmaps" for ns in namespaces} <= set(requests)
    assert progress[-1][0] == report.listed
    assert progress[-1][1] is not None  # the first, cluster-wide page told the total
    reader = SnapshotReader(LocalStore(tmp_path), "fanout")
    stored = [(o["metadata"]["namespace"], o["metadata"]["name"])
              for o in reader.iter_objects(reader.find("", "v1", "configmaps"))]
    assert len(stored) == len(set(stored)) == report.exported
    assert {(ns, f"cm-{i:02d}") for ns in namespaces for i in range(5)} <= set(stored)
    assert not any(ns in ("kube-system", "kube-public", "kube-node-lease") for ns, _ in stored)

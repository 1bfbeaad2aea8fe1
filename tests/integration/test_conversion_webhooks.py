"""Custom resources whose CRD converts through a webhook move without ever needing it.

The CRDs here store ``v1alpha1`` and prefer ``v1beta1``, converting through a webhook: one whose
Service has no backend at all (kwok pods serve nothing), one whose URL is a listener that
counts connections. Export, transform, import and verify must all succeed without a single
call. Then a snapshot whose custom resources are at the other version: the import waits until
the webhook's Service has ready endpoints (a real conversion webhook, started late), then
creates them through it.
"""
from __future__ import annotations

import base64
import datetime
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migrator.errors import ApiError
from migrator.importer import ImportOptions, import_snapshot
from migrator.kube import connect, iter_items
from migrator.kube.retry import RetryPolicy
from migrator.snapshot import SnapshotReader
from migrator.store import LocalStore
from migrator.verify import VerifyOptions, verify_snapshot
from tests.integration.import_snapshots import (
    CRDS,
    NAMESPACES,
    Contents,
    delete_quietly,
    unique,
    write_snapshot,
)
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
INJECT = "cert-manager.io/inject-ca-from"


class Recorder:
    """A TCP listener that counts the connections made to it (a webhook nobody may call)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def ca_and_cert(dns_name: str) -> tuple[bytes, bytes, bytes]:
    """A CA (PEM) and a serving certificate and key (PEM) it signed for ``dns_name``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def crd(group: str, client_config: dict[str, Any], ca: bytes) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gizmos.{group}", "labels": {"migrator-test": group.split(".")[0]},
                     "annotations": {INJECT: "certs/gizmo-webhook"}},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
                 "versions": [
                     {"name": "v1alpha1", "served": True, "storage": True, "schema": schema},
                     {"name": "v1beta1", "served": True, "storage": False, "schema": schema}],
                 "conversion": {"strategy": "Webhook", "webhook": {
                     "conversionReviewVersions": ["v1"],
                     "clientConfig": {**client_config,
                                      "caBundle": base64.b64encode(ca).decode()}}}}}


def first_address() -> str:
    """An address of this machine the API servers can reach that an Endpoints object may
    hold (loopback may not)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[3].split("/")[0]


@pytest.fixture
def tag() -> str:
    return unique("whk")


@pytest.fixture
def cleanup(old_cluster, new_cluster) -> Iterator[list[tuple[Any, str]]]:
    made: list[tuple[Any, str]] = []
    yield made
    for cluster, path in reversed(made):
        delete_quietly(cluster.client, path)


def test_custom_resources_move_at_their_storage_version_without_the_webhook(
    old_cluster, new_cluster, tmp_path, tag, cleanup
):
    recorder = Recorder()
    ca, _cert, _key = ca_and_cert("unused.example")
    namespace = tag
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    groups = {"svc": f"{tag}.svc.migrator.test", "url": f"{tag}.url.migrator.test"}
    configs = {"svc": {"service": {"namespace": namespace, "name": "gizmo-webhook",
                                   "path": "/convert", "port": 443}},
               "url": {"url": f"https://127.0.0.1:{recorder.port}/convert"}}
    old = old_cluster.client
    old.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"migrator-test": tag}}})
    cleanup += [(old_cluster, f"/api/v1/namespaces/{namespace}"),
                (new_cluster, f"/api/v1/namespaces/{namespace}")]
    for kind, group in groups.items():
        old.request("POST", crd_path, body=crd(group, configs[kind], ca))
        cleanup += [(old_cluster, f"{crd_path}/gizmos.{group}"),
                    (new_cluster, f"{crd_path}/gizmos.{group}")]
    # A Service with no backend: a kwok pod behind it serves nothing.
    old.request("POST", f"/api/v1/namespaces/{namespace}/services", body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "gizmo-webhook"},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 443}]}})
    for group in groups.values():
        wait_until(f"{group} served", lambda g=group: old.request(
            "GET", f"/apis/{g}/v1alpha1"), ignore=(Exception,))
        for i in range(3):  # created at the storage version: no conversion
            old.request("POST", f"/apis/{group}/v1alpha1/namespaces/{namespace}/gizmos", body={
                "apiVersion": f"{group}/v1alpha1", "kind": "Gizmo",
                "metadata": {"name": f"g{i}", "labels": {"migrator-test": tag}},
                "spec": {"size": i, "outside": {"the": "schema"}}})
    store = tmp_path / "snapshots"
    common = ["--kubeconfig", old_cluster.kubeconfig, "--store", str(store)]

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "migrator", *args, *common, "-o", "json"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    exported = cli("export", "--from", "old", "--to", "new", "--id", "whk", "-l",
                   f"migrator-test={tag}", "--include-namespace", namespace, "--cluster-scoped")
    versions = {r["resource"]: r["groupVersion"] for r in exported["resources"]
                if r["state"] == "exported"}
    for group in groups.values():
        assert versions[f"gizmos.{group}"] == f"{group}/v1alpha1"  # the storage version
        assert f"gizmos.{group}" in exported["conversionWebhooks"]
    transformed = cli("transform", "whk", "--to", "new", "--id", "whk-new")
    assert set(transformed["conversionWebhooks"]) == {f"gizmos.{g}" for g in groups.values()}
    checked = subprocess.run([sys.executable, "-m", "migrator", "check-apis", "--snapshot",
                              "whk", "--to", "new", *common, "-o", "json"], cwd=REPO,
                             capture_output=True, text=True)
    assert "storage version v1alpha1" in json.loads(checked.stdout)["conversionWebhooks"][
        f"gizmos.{groups['svc']}"]
    imported = cli("import", "whk-new", "--to", "new")
    assert imported["totals"]["failed"] == 0 and imported["totals"]["created"] == 9
    for group in groups.values():
        assert "created at the storage version v1alpha1" in imported["conversionWebhooks"][
            f"gizmos.{group}"]
    verified = cli("verify", "whk-new", "--to", "new", "--wait", "60")
    assert verified["ok"] and verified["totals"]["checked"] == 9
    # Every conversion fails here (the webhooks have no backend, or hang up at once), as this
    # read at the preferred version shows on both clusters; every stage above succeeded, so
    # none of their requests needed a conversion. (The clusters' own controllers keep calling
    # the URL webhook, which is why the recorder is not silent.)
    for cluster in (old_cluster, new_cluster):
        with connect(cluster.kubeconfig, cluster.context,
                     retry_policy=RetryPolicy(budget=0)) as once:
            for group in groups.values():
                with pytest.raises(ApiError, match="conversion webhook"):
                    once.request("GET", f"/apis/{group}/v1beta1/namespaces/{namespace}/gizmos")
    assert recorder.connections > 0
    for group in groups.values():
        moved = new_cluster.client.request("GET", f"{crd_path}/gizmos.{group}")
        kept = old.request("GET", f"{crd_path}/gizmos.{group}")
        assert moved["metadata"]["annotations"][INJECT] == "certs/gizmo-webhook"
        assert (moved["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]
                == kept["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"])
        items = list(iter_items(new_cluster.client,
                                f"/apis/{group}/v1alpha1/namespaces/{namespace}/gizmos"))
        assert sorted((o["metadata"]["name"], o["spec"]["outside"]["the"]) for o in items) == [
            ("g0", "schema"), ("g1", "schema"), ("g2", "schema")]


class Converter(http.server.BaseHTTPRequestHandler):
    """A conversion webhook: changes the apiVersion, counts the reviews it answered."""

    reviews = 0

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        converted = [{**o, "apiVersion": request["desiredAPIVersion"]}
                     for o in request["objects"]]
        body = json.dumps({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                           "response": {"uid": request["uid"], "convertedObjects": converted,
                                        "result": {"status": "Success"}}}).encode()
        type(self).reviews += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.timeout(300)
def test_an_import_that_needs_the_webhook_waits_for_its_endpoints(
    new_cluster, tmp_path, tag, cleanup
):
    namespace, group = tag, f"{tag}.late.migrator.test"
    ca, cert, key = ca_and_cert(f"gizmo-webhook.{namespace}.svc")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Converter)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Converter.reviews = 0
    definition = crd(group, {"service": {"namespace": namespace, "name": "gizmo-webhook",
                                         "path": "/convert", "port": port}}, ca)
    c = Contents()
    c.add(NAMESPACES, {"metadata": {"name": namespace}})
    c.add(CRDS, definition)
    beta = (group, "v1beta1", "gizmos", "Gizmo", True)  # not the storage version
    for i in range(3):
        c.add(beta, {"metadata": {"name": f"g{i}", "namespace": namespace}, "spec": {"size": i}})
    store = LocalStore(tmp_path / "snapshots")
    write_snapshot(store, "late", c)
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.{group}"
    cleanup += [(new_cluster, f"/api/v1/namespaces/{namespace}"), (new_cluster, crd_path)]

    def start_the_webhook_late() -> None:
        api = new_cluster.client
        wait_until("the namespace imported", lambda: api.request(
            "GET", f"/api/v1/namespaces/{namespace}"), timeout=120, interval=0.2,
            ignore=(Exception,))
        threading.Event().wait(4)
        api.request("POST", f"/api/v1/namespaces/{namespace}/services", body={
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "gizmo-webhook"},
            "spec": {"ports": [{"port": port, "targetPort": port}]}})
        api.request("POST", f"/api/v1/namespaces/{namespace}/endpoints", body={
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "gizmo-webhook"},
            "subsets": [{"addresses": [{"ip": first_address()}], "ports": [{"port": port}]}]})

    late = threading.Thread(target=start_the_webhook_late)
    late.start()
    try:
        report = import_snapshot(SnapshotReader(store, "late"), new_cluster.client,
                                 ImportOptions(webhook_timeout=90))
        late.join(timeout=120)
        data = report.to_dict()
        assert data["totals"]["failed"] == 0, data["failures"]
        note = data["conversionWebhooks"][f"gizmos.{group}"]
        assert "created at v1beta1 (stored at v1alpha1): waited" in note
        assert float(note.split("waited ")[1].split("s")[0]) >= 3
        assert Converter.reviews >= 3  # created through the webhook, once it was there
        verified = verify_snapshot(SnapshotReader(store, "late"), new_cluster.client,
                                   VerifyOptions())
        assert verified.ok, verified.to_dict()
    finally:
        late.join(timeout=120)
        server.shutdown()

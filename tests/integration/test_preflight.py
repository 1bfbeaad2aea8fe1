"""Preflight against the proving ground: a ready plan (and what it warns about), and each way
a plan is not ready: a cluster that does not answer, an expiring client certificate, a
missing bucket, a storage class the target lacks, a webhook that would reject the import,
DNS records someone else moved. Nothing in either cluster is changed by a preflight."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from migrator import crypto
from migrator.errors import ApiError
from migrator.export import ExportOptions
from migrator.migrate.plan import (
    ClusterRef,
    Plan,
    PreflightSettings,
    StoreRef,
    TransformSettings,
    VolumeSettings,
)
from migrator.migrate.preflight import CHECKS, PreflightReport, run_preflight
from migrator.traffic import parse as parse_traffic
from migrator.transform.differences import DifferencesConfig
from tests.integration.traffic_support import name_in, rfc2136_settings, set_records
from tests.waiting import wait_until

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
REQUESTS = {"cpu": "100m", "memory": "64Mi"}


def only(*checks: str) -> PreflightSettings:
    """Preflight settings that run only ``checks`` (the others are listed as skipped)."""
    return PreflightSettings(skip=tuple(c for c in CHECKS if c not in checks))


@pytest.fixture(scope="module")
def estate(old_cluster, real_nodes):
    """A small estate in a namespace of its own on the old cluster: a Deployment with
    requests (its pod Pending: its node selector matches no node), a claim of the proving
    ground's storage class, a batch/v1beta1 CronJob, a ConfigMap Argo CD tracks."""
    api, ns = old_cluster.client, f"t-preflight-{uuid.uuid4().hex[:8]}"
    api.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    )
    try:
        api.request(
            "POST",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            body={
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "nodeSelector": {"migrator.io/preflight": "nowhere"},
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "busybox",
                                    "resources": {"requests": REQUESTS},
                                }
                            ],
                        },
                    },
                },
            },
        )
        api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
            body={
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {
                    "storageClassName": real_nodes["old"].storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            },
        )
        api.request(
            "POST",
            f"/apis/batch/v1beta1/namespaces/{ns}/cronjobs",
            body={
                "apiVersion": "batch/v1beta1",
                "kind": "CronJob",
                "metadata": {"name": "nightly"},
                "spec": {
                    "schedule": "0 3 * * *",
                    "suspend": True,
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "OnFailure",
                                    "containers": [{"name": "c", "image": "busybox"}],
                                }
                            }
                        }
                    },
                },
            },
        )
        api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            body={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "tracked",
                    "labels": {"app.kubernetes.io/instance": "shop"},
                    "annotations": {ARGO_TRACKING: f"shop:/ConfigMap:{ns}/tracked"},
                },
                "data": {"a": "b"},
            },
        )
        wait_until(
            "the Deployment's pod exists and the claim is bound",
            lambda: (
                api.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
                and api.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")[
                    "status"
                ].get("phase")
                == "Bound"
            ),
            timeout=30,
        )
        yield ns
    finally:
        api.request("DELETE", f"/api/v1/namespaces/{ns}")


def make_plan(proving_ground, ns: str, store: StoreRef, **fields) -> Plan:
    return Plan(
        name=f"preflight-{ns}",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("new", "new"),
        store=store,
        kubeconfig=Path(proving_ground["kubeconfig"]),
        export=ExportOptions(include_namespaces=(ns,)),
        **fields,
    )


def s3_store(s3, bucket: str | None = None) -> StoreRef:
    return StoreRef(f"s3://{bucket or s3.bucket}/runs", s3_endpoint=s3.endpoint)


@pytest.fixture
def aws_env(s3, monkeypatch):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)


def versions(api, ns: str) -> dict[str, str]:
    """resourceVersion of every object of the kinds a preflight could touch in ``ns``."""
    found = {}
    for path in (
        "/api/v1/namespaces/{ns}/configmaps",
        "/api/v1/namespaces/{ns}/secrets",
        "/api/v1/namespaces/{ns}/persistentvolumeclaims",
        "/api/v1/namespaces/{ns}/serviceaccounts",
        "/apis/batch/v1beta1/namespaces/{ns}/cronjobs",
        "/apis/batch/v1/namespaces/{ns}/jobs",
        "/apis/apps/v1/namespaces/{ns}/deployments",
    ):
        for item in api.request("GET", path.format(ns=ns))["items"]:
            found[f"{path.rsplit('/', 1)[1]}/{item['metadata']['name']}"] = item["metadata"][
                "resourceVersion"
            ]
    return found


def test_a_ready_plan_passes_with_the_warnings_it_deserves(
    proving_ground, old_cluster, new_cluster, estate, s3, aws_env
):
    plan = make_plan(proving_ground, estate, s3_store(s3))
    before = versions(old_cluster.client, estate)
    started = time.monotonic()
    report = run_preflight(plan)
    took = time.monotonic() - started
    status = {c.name: c.status for c in report.checks}
    assert [c.name for c in report.checks] == list(CHECKS)
    assert report.ready, report.to_dict()
    assert status["reachable"] == status["permissions"] == "pass"
    removed = report.check("removed-apis")
    assert removed.status == "pass" and any(
        f"CronJob {estate}/nightly" in d for d in removed.details
    )
    assert (
        status["version-skew"] == "warn" and "batch/v1beta1" in report.check("version-skew").details
    )
    assert (
        report.check("store").status == "warn"
        and "not be encrypted" in report.check("store").summary
    )
    gitops = report.check("gitops")
    assert gitops.status == "warn" and "1 object(s) are left to Argo CD" in gitops.summary
    assert f"Argo CD: 1 in {estate}" in gitops.details
    assert "cpu 0.1 cores of" in report.check("capacity").summary  # the Deployment's request
    assert status["crd-controllers"] == "pass" and status["dns"] == "skip"
    assert status["storage-classes"] in ("pass", "warn") and status["certificates"] == "pass"
    assert isinstance(report, PreflightReport) and not report.problems()
    # nothing changed: the estate's objects as they were, nothing new in the store or target
    assert versions(old_cluster.client, estate) == before
    assert not list(s3.client().list_objects_v2(Bucket=s3.bucket).get("Contents", []))
    with pytest.raises(ApiError) as missing:
        new_cluster.client.request("GET", f"/api/v1/namespaces/{estate}")
    assert missing.value.status == 404
    assert took < 30, f"a preflight of a small estate took {took:.1f}s"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


def kubeconfig_with(
    proving_ground, tmp_path: Path, name: str, server: str | None = None, user: dict | None = None
) -> Path:
    """The proving ground's kubeconfig plus a context ``name``: the new cluster's, with
    another ``server`` URL or another ``user``."""
    doc = yaml.safe_load(Path(proving_ground["kubeconfig"]).read_text())
    context = next(c for c in doc["contexts"] if c["name"] == "new")["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    doc["clusters"].append(
        {"name": name, "cluster": {**cluster, **({"server": server} if server else {})}}
    )
    doc["users"].append(
        {
            "name": name,
            "user": user or next(u for u in doc["users"] if u["name"] == context["user"])["user"],
        }
    )
    doc["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_cluster_that_does_not_answer_fails_reachable_and_skips_what_needs_it(
    proving_ground, tmp_path, monkeypatch
):
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    kubeconfig = kubeconfig_with(
        proving_ground, tmp_path, "closed", server=f"https://127.0.0.1:{closed_port()}"
    )
    (tmp_path / "store").mkdir()
    plan = Plan(
        name="unreachable",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("closed", "closed"),
        store=StoreRef(str(tmp_path / "store")),
        kubeconfig=kubeconfig,
    )
    started = time.monotonic()
    report = run_preflight(plan, reach_for=1.0)
    assert time.monotonic() - started < 20
    reachable = report.check("reachable")
    assert reachable.status == "fail" and "'closed'" in reachable.summary and reachable.action
    needs_both = (
        "permissions",
        "removed-apis",
        "crd-controllers",
        "storage-classes",
        "capacity",
        "admission-webhooks",
        "version-skew",
        "gitops",
    )
    for name in needs_both:
        check = report.check(name)
        assert check.status == "skip" and "did not answer" in check.summary, check
    assert report.check("store").status == "warn" and report.check("dns").status == "skip"
    assert report.check("certificates").status in ("pass", "warn")  # the old side still read
    assert not report.ready and [p.what for p in report.problems()] == ["reachable"]


def client_certificate(proving_ground, not_after: datetime) -> dict:
    """A kubeconfig user whose client certificate ends at ``not_after``: issued by the
    proving ground's CA when its key is at hand (the cluster then accepts it), else
    self-signed (the check reads the certificate, not the server's verdict)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "migrator-preflight-test")])
    pki = Path(proving_ground["kubeconfig"]).parent / "pki"
    if (pki / "ca.key").exists():
        signer = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
        issuer = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()).subject
    else:
        signer, issuer = key, subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=30))
        .not_valid_after(not_after)
        .sign(signer, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "client-certificate-data": base64.b64encode(pem).decode(),
        "client-key-data": base64.b64encode(key_pem).decode(),
    }


def test_a_client_certificate_that_expires_in_two_days_fails(proving_ground, tmp_path, monkeypatch):
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2, hours=1)
    kubeconfig = kubeconfig_with(
        proving_ground, tmp_path, "expiring", user=client_certificate(proving_ground, ends)
    )
    plan = Plan(
        name="certs",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("expiring", "expiring"),
        store=StoreRef(str(tmp_path)),
        kubeconfig=kubeconfig,
        preflight=only("reachable", "certificates"),
    )
    report = run_preflight(plan, reach_for=2.0)
    certificates = report.check("certificates")
    assert certificates.status == "fail", certificates
    expiring = [d for d in certificates.details if "client certificate of context 'expiring'" in d]
    assert expiring == [
        f"client certificate of context 'expiring' expires {ends:%Y-%m-%d %H:%M} UTC (in 2 day(s))"
    ]
    assert certificates.summary.startswith("1 certificate(s) expire within 28 days")
    assert any("client certificate of context 'old'" in d for d in certificates.details)
    assert (
        report.check("gitops").status == "skip"
        and "preflight.skip" in report.check("gitops").summary
    )
    # the same certificate only warns when a day and a half must be left
    relaxed = dataclasses.replace(
        plan, preflight=dataclasses.replace(plan.preflight, certificate_days=1.5)
    )
    assert run_preflight(relaxed, reach_for=2.0).check("certificates").status == "warn"


def test_a_missing_bucket_fails_the_store(proving_ground, s3, aws_env):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    plan = Plan(
        name="bucket",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("new", "new"),
        store=s3_store(s3, missing),
        kubeconfig=Path(proving_ground["kubeconfig"]),
        preflight=only("store"),
    )
    store = run_preflight(plan).check("store")
    assert store.status == "fail" and missing in store.summary and "bucket" in store.action
    assert missing not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]


def test_a_class_mapped_to_one_the_target_lacks_fails(proving_ground, estate, real_nodes, tmp_path):
    old_class, absent = real_nodes["old"].storage_class, f"absent-{uuid.uuid4().hex[:6]}"
    plan = make_plan(
        proving_ground,
        estate,
        StoreRef(str(tmp_path)),
        preflight=only("storage-classes"),
        transform=TransformSettings(
            differences=DifferencesConfig(storage_classes={old_class: absent})
        ),
    )
    result = run_preflight(plan).check("storage-classes")
    assert result.status == "fail", result
    assert result.details == (
        f"PVC {estate}/data: class {absent} (mapped from {old_class}) is not in the target",
    )
    assert absent in result.action and real_nodes["new"].storage_class in result.action
    # volumes moved as EBS snapshots: the proving ground's volumes are not EBS volumes
    ebs = dataclasses.replace(plan, volumes=VolumeSettings(method="ebs"))
    result = run_preflight(ebs).check("storage-classes")
    assert result.status == "fail" and "not on EBS volumes" in result.summary
    assert any(d.startswith(f"PVC {estate}/data: volume pvc-") for d in result.details)
    # without the mapping the class is found
    unmapped = dataclasses.replace(plan, transform=TransformSettings())
    assert run_preflight(unmapped).check("storage-classes").status in ("pass", "warn")


def test_a_webhook_without_endpoints_that_fails_closed_fails(
    proving_ground, new_cluster, estate, tmp_path
):
    api, name = new_cluster.client, f"preflight-{uuid.uuid4().hex[:8]}.example.com"
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    # It matches Deployments in the preflight's eyes (rules), but selects no real object
    # (its selectors), so the other tests using this cluster are never stopped by it.
    api.request(
        "POST",
        path,
        body={
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": name,
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                    "clientConfig": {
                        "service": {"namespace": "default", "name": f"absent-{name[10:18]}"}
                    },
                    "namespaceSelector": {
                        "matchLabels": {"migrator.io/preflight-webhook": name[10:18]}
                    },
                    "objectSelector": {
                        "matchLabels": {"migrator.io/preflight-webhook": name[10:18]}
                    },
                    "rules": [
                        {
                            "operations": ["CREATE", "UPDATE"],
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "resources": ["deployments"],
                        }
                    ],
                }
            ],
        },
    )
    try:
        plan = make_plan(
            proving_ground, estate, StoreRef(str(tmp_path)), preflight=only("admission-webhooks")
        )
        result = run_preflight(plan).check("admission-webhooks")
        assert result.status == "fail", result
        ours = [d for d in result.details if name in d]
        assert (
            len(ours) == 1 and "has no ready endpoint" in ours[0] and "deployments.apps" in ours[0]
        )
    finally:
        api.request("DELETE", f"{path}/{name}")


def test_records_moved_by_someone_else_fail_dns(proving_ground, dns_zone, tmp_path):
    name = name_in(dns_zone, "shop")
    doc = rfc2136_settings(dns_zone, tmp_path, {name: ["192.0.2.20"]})
    doc["names"][0]["old"] = ["192.0.2.10"]
    plan = Plan(
        name="dns",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("new", "new"),
        store=StoreRef(str(tmp_path)),
        kubeconfig=Path(proving_ground["kubeconfig"]),
        traffic=parse_traffic(doc),
        preflight=only("dns"),
    )
    set_records(dns_zone, name, 1, "A", "192.0.2.10")
    ready = run_preflight(plan).check("dns")
    assert ready.status == "pass" and name in ready.details[0], ready
    set_records(dns_zone, name, 1, "A", "192.0.2.99")
    moved = run_preflight(plan).check("dns")
    assert moved.status == "fail" and "192.0.2.99" in moved.summary, moved


def test_an_identity_without_the_rbac_fails_permissions_naming_what_is_missing(
    proving_ground, tmp_path, monkeypatch
):
    assert (Path(proving_ground["kubeconfig"]).parent / "pki" / "ca.key").exists()
    user = client_certificate(proving_ground, datetime.now(UTC) + timedelta(days=30))
    kubeconfig = kubeconfig_with(proving_ground, tmp_path, "limited", user=user)
    plan = Plan(
        name="rbac",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("limited", "limited"),
        store=StoreRef(str(tmp_path)),
        kubeconfig=kubeconfig,
        preflight=only("reachable", "permissions"),
    )
    result = run_preflight(plan).check("permissions")
    assert result.status == "fail", result
    assert "new cluster 'limited': * * (*)" in result.details  # the importer's every verb
    assert not any(d.startswith("old cluster") for d in result.details)  # admin there
    assert (
        "kubectl --context limited apply -f manifests/rbac.yaml -l migrator.io/role=importer"
        in (result.action)
    )
    assert "manifests/volume-sync.yaml" in result.action  # volumes move (volumes.method mover)
    no_volumes = dataclasses.replace(
        plan,
        volumes=dataclasses.replace(plan.volumes, method="none"),
        quiesce=dataclasses.replace(plan.quiesce, method="none"),
    )
    assert "volume-sync" not in run_preflight(no_volumes).check("permissions").action


def test_custom_resources_whose_controller_stays_behind_warn(
    proving_ground, old_cluster, make_namespace, tmp_path
):
    api, uid = old_cluster.client, uuid.uuid4().hex[:8]
    group, apps, operators = (
        f"g{uid}.example.com",
        make_namespace(old_cluster),
        make_namespace(old_cluster),
    )
    crd_name, role = f"gadgets.{group}", f"preflight-gadget-operator-{uid}"
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    api.request(
        "POST",
        crds,
        body={
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
    )
    try:
        wait_until(
            "a gadget created (its CRD established)",
            lambda: api.request(
                "POST",
                f"/apis/{group}/v1/namespaces/{apps}/gadgets",
                body={"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}},
            ),
            timeout=30,
            ignore=(ApiError,),
        )
        plan = make_plan(
            proving_ground, apps, StoreRef(str(tmp_path)), preflight=only("crd-controllers")
        )
        nobody = run_preflight(plan).check("crd-controllers")
        assert nobody.status == "warn" and nobody.details == (
            f"nothing found that reconciles {crd_name}; install its operator in the target first",
        )

        api.request(
            "POST",
            f"/api/v1/namespaces/{operators}/serviceaccounts",
            body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        )
        api.request(
            "POST",
            f"{rbac}/clusterroles",
            body={
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": [
                    {
                        "apiGroups": [group],
                        "resources": ["gadgets"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
        )
        api.request(
            "POST",
            f"{rbac}/clusterrolebindings",
            body={
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "operator", "namespace": operators}
                ],
            },
        )
        api.request(
            "POST",
            f"/apis/apps/v1/namespaces/{operators}/deployments",
            body={
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "gadget-operator"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "op"}},
                    "template": {
                        "metadata": {"labels": {"app": "op"}},
                        "spec": {
                            "serviceAccountName": "operator",
                            "containers": [{"name": "op", "image": "busybox"}],
                        },
                    },
                },
            },
        )
        behind = run_preflight(plan).check("crd-controllers")
        assert behind.status == "warn" and behind.details == (
            f"{crd_name} is reconciled by Deployment {operators}/gadget-operator, neither in the "
            "target nor in the export's scope",
        )
        both = dataclasses.replace(plan, export=ExportOptions(include_namespaces=(apps, operators)))
        moved = run_preflight(both).check("crd-controllers")
        assert moved.status == "pass" and moved.details == (
            f"{crd_name}: Deployment {operators}/gadget-operator",
        )
    finally:
        for path in (
            f"{rbac}/clusterrolebindings/{role}",
            f"{rbac}/clusterroles/{role}",
            f"{crds}/{crd_name}",
        ):
            with contextlib.suppress(ApiError):
                api.request("DELETE", path)

"""Preflight's pure parts on plain data: quantities, pod requests against free capacity,
GitOps marks, certificate dates, release skew, webhook rules, RBAC rules read from the
shipped manifests, controller detection, and the report itself."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from migrator import crypto
from migrator.errors import ConfigError
from migrator.migrate.plan import ClusterRef, Plan, PreflightSettings, StoreRef
from migrator.migrate.preflight import CHECKS, CheckResult, PreflightReport, run_preflight
from migrator.migrate.preflight.capacity import (
    Amounts,
    amounts,
    capacity_result,
    node_usable,
    pod_requests,
    usage_status,
    workload_requests,
)
from migrator.migrate.preflight.certificates import (
    certificate_not_after,
    describe_expiry,
    expiry_status,
)
from migrator.migrate.preflight.context import Context
from migrator.migrate.preflight.controllers import (
    bound_accounts,
    controllers_of,
    grants_read,
    workload_of,
)
from migrator.migrate.preflight.gitops import gitops_result
from migrator.migrate.preflight.permissions import Access, load_role, rule_accesses
from migrator.migrate.preflight.result import bounded
from migrator.migrate.preflight.storage import claim_class, provisioner_present
from migrator.migrate.preflight.store import check_store
from migrator.migrate.preflight.versions import removed_between, version_skew
from migrator.migrate.preflight.webhooks import matched_kinds, rule_matches, webhook_verdict
from migrator.resources.crds import crd_info
from migrator.resources.gitops import gitops_manager
from migrator.resources.quantity import parse_quantity

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


# -- quantities and capacity ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1Gi", Decimal(2**30)),
        ("1.5G", Decimal("1.5e9")),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal("129e6")),
        ("123Mi", Decimal(123 * 2**20)),
        ("100n", Decimal("1e-7")),
        (".5", Decimal("0.5")),
        (3, Decimal(3)),
    ],
)
def test_quantities_read_as_the_api_server_counts(text, value) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1X", "Gi", "1.2.3", "5 m"])
def test_what_is_not_a_quantity_is_refused(text) -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes quantity"):
        parse_quantity(text)


def container(cpu: str | None = None, memory: str | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"name": "c", "resources": {"requests": requests}}


def pod(*containers, inits=(), phase="Running", node=None, overhead=None) -> dict:
    spec = {"containers": list(containers), "initContainers": list(inits)}
    if node:
        spec["nodeName"] = node
    if overhead:
        spec["overhead"] = overhead
    return {"spec": spec, "status": {"phase": phase}}


def test_a_pod_reserves_its_containers_or_its_biggest_init_container_plus_overhead() -> None:
    assert pod_requests(pod(container("500m", "1Gi"), container("250m"))) == Amounts(
        Decimal("0.75"), Decimal(2**30)
    )
    big_init = pod(container("100m", "64Mi"), inits=[container("2", "10Mi"), container("1", "1Gi")])
    assert pod_requests(big_init) == Amounts(Decimal(2), Decimal(2**30))
    assert pod_requests(pod(container("1"), overhead={"cpu": "250m"})).cpu == Decimal("1.25")
    assert pod_requests(pod({"name": "no-requests"})) == Amounts()


def test_usage_thresholds_are_80_and_100_percent() -> None:
    assert usage_status(Decimal(79), Decimal(100)) == "pass"
    assert usage_status(Decimal(81), Decimal(100)) == "warn"
    assert usage_status(Decimal(100), Decimal(100)) == "warn"
    assert usage_status(Decimal(101), Decimal(100)) == "fail"
    assert usage_status(Decimal(1), Decimal(0)) == "fail"
    assert usage_status(Decimal(0), Decimal(-5)) == "pass"  # nothing to place


def test_capacity_figures_say_what_is_needed_and_free() -> None:
    allocatable = amounts({"cpu": "4", "memory": "8Gi"})
    taken = amounts({"cpu": "1", "memory": "2Gi"})
    fits = capacity_result(amounts({"cpu": "1500m", "memory": "1Gi"}), allocatable, taken, 2)
    assert fits.status == "pass" and "cpu 1.5 cores of 3 cores free (50 %)" in fits.summary
    tight = capacity_result(amounts({"cpu": "2500m", "memory": "1Gi"}), allocatable, taken, 2)
    assert tight.status == "warn" and "83 %" in tight.summary and tight.action
    over = capacity_result(amounts({"cpu": "1", "memory": "7Gi"}), allocatable, taken, 2)
    assert over.status == "fail" and "memory 7.00 GiB of 6.00 GiB free" in over.summary
    assert any("on 2 node(s)" in line for line in over.details)


def test_only_ready_schedulable_nodes_count() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert node_usable(ready)
    assert not node_usable({**ready, "spec": {"unschedulable": True}})
    assert not node_usable({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})


# -- GitOps ------------------------------------------------------------------------------------


def meta(labels=None, annotations=None, managers=()) -> dict:
    return {
        "metadata": {
            "name": "x",
            "labels": labels or {},
            "annotations": annotations or {},
            "managedFields": [{"manager": m, "operation": "Apply"} for m in managers],
        }
    }


@pytest.mark.parametrize(
    "obj,tool",
    [
        (
            meta(annotations={"argocd.argoproj.io/tracking-id": "app:apps/Deployment:shop/web"}),
            "argocd",
        ),
        (
            meta(labels={"app.kubernetes.io/instance": "web"}, managers=["argocd-controller"]),
            "argocd",
        ),
        (meta(managers=["argocd-application-controller"]), "argocd"),
        (meta(labels={"app.kubernetes.io/instance": "web"}), None),  # Helm sets it too
        (meta(labels={"kustomize.toolkit.fluxcd.io/name": "apps"}), "flux"),
        (meta(labels={"helm.toolkit.fluxcd.io/name": "redis"}), "flux"),
        (meta(managers=["kustomize-controller"]), "flux"),
        (meta(managers=["helm-controller", "kubectl"]), "flux"),
        (meta(managers=["kubectl-client-side-apply", "helm"]), None),
        ({"metadata": {}}, None),
    ],
)
def test_gitops_marks(obj, tool) -> None:
    assert gitops_manager(obj) == tool


def test_gitops_verdict_counts_per_tool_and_namespace_and_says_what_happens() -> None:
    assert gitops_result(Counter(), "leave").status == "pass"
    counts = Counter({("argocd", "shop"): 3, ("argocd", "web"): 2, ("flux", "shop"): 1})
    left = gitops_result(counts, "leave")
    assert left.status == "warn"
    assert "5 object(s) are left to Argo CD" in left.summary and "not be imported" in left.summary
    assert "Argo CD: 3 in shop" in left.details and "Flux: 1 in shop" in left.details
    imported = gitops_result(counts, "import")
    assert imported.status == "warn" and "will be imported" in imported.summary
    assert "1 object(s) managed by Flux" in imported.summary


# -- certificates, versions ------------------------------------------------------------------


def test_certificate_thresholds() -> None:
    assert expiry_status(NOW + timedelta(days=30), NOW, 14) == "pass"
    assert expiry_status(NOW + timedelta(days=27), NOW, 14) == "warn"
    assert expiry_status(NOW + timedelta(days=28, seconds=1), NOW, 14) == "pass"
    assert expiry_status(NOW + timedelta(days=13), NOW, 14) == "fail"
    assert expiry_status(NOW - timedelta(days=1), NOW, 14) == "fail"
    assert "expired 2026-12-05" in describe_expiry(
        "client certificate", NOW - timedelta(days=1), NOW
    )
    assert "in 2 day(s)" in describe_expiry("x", NOW + timedelta(days=2, hours=1), NOW)


def self_signed(not_after: datetime) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "preflight")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=400))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_certificate_dates_are_read_from_pem_and_der() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    when = NOW.replace(microsecond=0) + timedelta(days=3)
    pem = self_signed(when)
    assert certificate_not_after(pem) == when
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert certificate_not_after(der) == when


def test_version_skew() -> None:
    assert version_skew((1, 33), (1, 21)).status == "fail"
    assert version_skew((1, 21), (1, 21)).status == "pass"
    assert version_skew((1, 30), (1, 31)).status == "pass"
    jump = version_skew((1, 21), (1, 33))
    assert jump.status == "warn" and "12 minor release(s)" in jump.summary
    assert "batch/v1beta1" in jump.details and "extensions/v1beta1" in jump.details
    crossed = removed_between((1, 21), (1, 33))
    assert len(crossed) > 20 and jump.details[-1] == f"and {len(crossed) - 20} more"
    assert "apps/v1beta1" not in removed_between((1, 21), (1, 33))  # gone before 1.21
    assert removed_between((1, 24), (1, 25)) == sorted(removed_between((1, 24), (1, 25)))
    assert "policy/v1beta1" in removed_between((1, 24), (1, 25))


# -- admission webhooks -------------------------------------------------------------------------

DEPLOY, CM, NS = ("apps", "deployments", True), ("", "configmaps", True), ("", "namespaces", False)


def test_webhook_rules_match_writes_of_the_kinds_they_name() -> None:
    rule = {
        "operations": ["CREATE"],
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments"],
    }
    assert rule_matches(rule, DEPLOY) and not rule_matches(rule, CM)
    assert not rule_matches({**rule, "operations": ["DELETE"]}, DEPLOY)
    assert rule_matches({**rule, "operations": ["*"], "apiGroups": ["*"], "resources": ["*"]}, CM)
    assert not rule_matches({**rule, "resources": ["deployments/scale"]}, DEPLOY)
    anything = {"operations": ["UPDATE"], "apiGroups": ["*"], "resources": ["*/*"]}
    assert rule_matches({**anything, "scope": "Cluster"}, NS)
    assert not rule_matches({**anything, "scope": "Namespaced"}, NS)
    hook = {"name": "h", "rules": [rule, {**rule, "apiGroups": [""], "resources": ["configmaps"]}]}
    assert matched_kinds(hook, [DEPLOY, CM, NS]) == [DEPLOY, CM]


def test_webhook_verdicts() -> None:
    hook = {
        "name": "policy.example.com",
        "timeoutSeconds": 5,
        "clientConfig": {"service": {"namespace": "gate", "name": "policy"}},
    }
    blocked = webhook_verdict("ValidatingWebhookConfiguration p", hook, [DEPLOY], False)
    assert blocked.status == "fail" and "gate/policy has no ready endpoint" in blocked.line
    assert (
        webhook_verdict("V p", {**hook, "failurePolicy": "Ignore"}, [DEPLOY], False).status
        == "pass"
    )
    assert webhook_verdict("V p", hook, [DEPLOY], True).status == "pass"
    slow = webhook_verdict("V p", {**hook, "timeoutSeconds": 30}, [DEPLOY], True)
    assert slow.status == "warn" and "waits up to 30s" in slow.line
    many = [(f"g{i}", "things", True) for i in range(11)]
    wide = webhook_verdict("V p", hook, many, True)
    assert wide.status == "warn" and "11 kind(s)" in wide.line and "and 6 more" in wide.line
    assert (
        webhook_verdict(
            "V p", {**hook, "clientConfig": {"url": "https://x"}}, [DEPLOY], None
        ).status
        == "pass"
    )


# -- permissions: the rules come from the shipped manifests ------------------------------------


def test_rbac_rules_are_read_from_the_manifests() -> None:
    exporter = load_role("rbac.yaml", "exporter")
    assert Access("list", "*", "*") in exporter.accesses
    assert Access("get", path="/version") in exporter.accesses
    assert not any(a.verb == "create" for a in exporter.accesses)
    assert Access("*", "*", "*") in load_role("rbac.yaml", "importer").accesses
    sync = load_role("volume-sync.yaml", "volume-sync")
    assert Access("patch", "apps", "statefulsets", "scale") in sync.accesses
    assert Access("create", "", "pods", "exec") in sync.accesses
    assert "-l migrator.io/role=exporter" in exporter.apply_command("old")


def test_rule_accesses_and_reviews() -> None:
    accesses = rule_accesses(
        [
            {"apiGroups": ["", "apps"], "resources": ["pods/log", "deployments"], "verbs": ["get"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
        ]
    )
    assert Access("get", "", "pods", "log") in accesses and len(accesses) == 5
    review = Access("get", "", "pods", "log").review()["spec"]["resourceAttributes"]
    assert review == {"verb": "get", "group": "", "resource": "pods", "subresource": "log"}
    assert Access("get", path="/healthz").review()["spec"] == {
        "nonResourceAttributes": {"path": "/healthz", "verb": "get"}
    }


# -- CRD controllers -----------------------------------------------------------------------------

CRD = {
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"plural": "widgets", "kind": "Widget"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True}],
    },
}


def test_a_controller_is_a_workload_whose_account_may_watch_the_crd() -> None:
    info = crd_info(CRD)
    assert info is not None
    reads = [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["watch", "list"]}]
    assert grants_read(reads, "example.com", "widgets")
    assert not grants_read(reads, "example.com", "gadgets")
    assert grants_read(
        [{"apiGroups": ["example.com"], "resources": ["*"], "verbs": ["*"]}],
        "example.com",
        "widgets",
    )
    # everything-everywhere (Argo CD, cluster-admin) is nobody's controller in particular
    assert not grants_read(
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], "example.com", "widgets"
    )
    assert not grants_read([{**reads[0], "verbs": ["get"]}], "example.com", "widgets")
    roles = {("ClusterRole", "", "widget-operator"): reads, ("Role", "ops", "local"): reads}
    bindings = [
        {
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "widget-operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}],
        },
        {
            "metadata": {"name": "r", "namespace": "ops"},
            "roleRef": {"kind": "Role", "name": "local"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "helper"},
                {"kind": "User", "name": "x"},
            ],
        },
    ]
    accounts = bound_accounts(bindings, roles)
    assert set(accounts) == {("ops", "op"), ("ops", "helper")}

    def deploy(name, account=None):
        spec = {"serviceAccountName": account} if account else {}
        return workload_of(
            "Deployment",
            "deployments",
            {"metadata": {"name": name, "namespace": "ops"}, "spec": {"template": {"spec": spec}}},
        )

    found = controllers_of(
        info, [deploy("operator", "op"), deploy("web"), deploy("h", "helper")], accounts
    )
    assert [w.name for w in found] == ["operator", "h"]


# -- storage ------------------------------------------------------------------------------------


def test_claim_classes_and_provisioners() -> None:
    assert claim_class({"spec": {"storageClassName": "fast"}}) == "fast"
    assert claim_class({"spec": {"storageClassName": ""}}) is None  # static binding
    assert (
        claim_class(
            {
                "metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
                "spec": {},
            }
        )
        == "old"
    )
    assert provisioner_present("ebs.csi.aws.com", {"ebs.csi.aws.com"}, set())
    assert provisioner_present("kubernetes.io/aws-ebs", {"ebs.csi.aws.com"}, set())
    assert not provisioner_present("kubernetes.io/aws-ebs", set(), set())
    assert provisioner_present("kubernetes.io/no-provisioner", set(), set())
    assert provisioner_present("rancher.io/local-path", set(), {"rancher.io/local-path"})
    assert not provisioner_present("rancher.io/local-path", {"ebs.csi.aws.com"}, set())


# -- the report, and the store check on a local store -----------------------------------------


def test_report_is_ready_without_fails_and_lists_fails_as_problems() -> None:
    checks = [CheckResult(name, "pass", "ok") for name in CHECKS]
    assert PreflightReport(checks).ready and not PreflightReport(checks).problems()
    checks[3] = CheckResult(CHECKS[3], "fail", "two CRDs", "install them", ("a", "b"))
    checks[4] = CheckResult(CHECKS[4], "warn", "hmm", "look")
    report = PreflightReport(checks)
    assert not report.ready and report.partial
    assert [p.what for p in report.problems()] == [CHECKS[3]]
    assert report.problems()[0].error == "two CRDs; install them"
    data = report.to_dict()
    assert data["ready"] is False and data["counts"] == {
        "pass": 10,
        "warn": 1,
        "fail": 1,
        "skip": 0,
    }
    assert data["checks"][3] == {
        "name": CHECKS[3],
        "status": "fail",
        "summary": "two CRDs",
        "action": "install them",
        "details": ["a", "b"],
    }
    with pytest.raises(ValueError):
        CheckResult("nonsense", "pass", "x")
    with pytest.raises(ValueError):
        CheckResult("dns", "maybe", "x")


def test_details_are_bounded() -> None:
    assert bounded(str(i) for i in range(20)) == tuple(str(i) for i in range(20))
    assert bounded(str(i) for i in range(25))[-1] == "and 5 more"
    assert len(bounded(str(i) for i in range(25))) == 21


def plan_with_store(url: str, key_file: Path | None = None) -> Plan:
    return Plan(
        name="p",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef("new", "new"),
        store=StoreRef(url, key_file=key_file),
    )


def test_store_probe_is_written_and_removed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    result = check_store(Context(plan_with_store(str(store_dir)), NOW))
    assert result.status == "warn" and "will not be encrypted" in result.summary
    assert [p for p in store_dir.rglob("*") if p.is_file()] == []


def test_store_key_is_read_and_never_shown(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    (tmp_path / "store").mkdir()
    key = crypto.generate_key()
    key_file = tmp_path / "key"
    key_file.write_text(key.hex())
    good = check_store(Context(plan_with_store(str(tmp_path / "store"), key_file), NOW))
    assert good.status == "pass" and crypto.key_id(key) in good.summary
    assert key.hex() not in str(good.to_dict())
    key_file.write_text("not a key " + key.hex()[:10])
    bad = check_store(Context(plan_with_store(str(tmp_path / "store"), key_file), NOW))
    assert (
        bad.status == "fail" and "key" in bad.summary and key.hex()[:10] not in str(bad.to_dict())
    )
    missing = check_store(Context(plan_with_store(str(tmp_path / "nowhere")), NOW))
    assert missing.status == "fail" and missing.action


def test_clusters_that_do_not_answer_are_a_failed_line_not_an_exception(
    write_kubeconfig, closed_port: int, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    url = f"https://127.0.0.1:{closed_port}"
    kubeconfig = write_kubeconfig({"old": url, "new": url})
    (tmp_path / "store").mkdir()
    plan = Plan(
        name="p",
        file=None,
        source=ClusterRef("old", "legacy"),
        target=ClusterRef("new", "fresh"),
        store=StoreRef(str(tmp_path / "store")),
        kubeconfig=kubeconfig,
        preflight=PreflightSettings(skip=("gitops",)),
    )
    report = run_preflight(plan, reach_for=0.2)
    status = {c.name: c.status for c in report.checks}
    assert status["reachable"] == "fail" and not report.ready
    assert "'legacy' and new cluster 'fresh'" in report.check("reachable").summary
    assert status["gitops"] == "skip" and "preflight.skip" in report.check("gitops").summary
    assert status["store"] == "warn" and status["dns"] == "skip"
    assert status["certificates"] == "pass"  # token users, servers not reached: nothing to date
    skipped = [c for c in report.checks if c.status == "skip" and c.name not in ("gitops", "dns")]
    assert [c.name for c in skipped] == [
        "permissions",
        "removed-apis",
        "crd-controllers",
        "storage-classes",
        "capacity",
        "admission-webhooks",
        "version-skew",
    ]
    assert all("did not answer" in c.summary for c in skipped)
    assert [p.what for p in report.problems()] == ["reachable"]


def test_a_workload_requests_its_template_times_its_replicas() -> None:
    template = {"spec": {"containers": [{"resources": {"requests": {"cpu": "250m",
                                                                     "memory": "64Mi"}}}]}}
    deployment = {"kind": "Deployment", "spec": {"replicas": 3, "template": template}}
    assert workload_requests(deployment) == Amounts(Decimal("0.75"), Decimal(3 * 64 * 2**20))
    owned = {**deployment, "kind": "ReplicaSet",
             "metadata": {"ownerReferences": [{"kind": "Deployment", "name": "web"}]}}
    assert workload_requests(owned) == Amounts()  # counted through its Deployment
    daemons = {"kind": "DaemonSet", "spec": {"template": template},
               "status": {"desiredNumberScheduled": 2}}
    assert workload_requests(daemons).cpu == Decimal("0.5")
    unset = {"kind": "StatefulSet", "spec": {"template": template}}
    assert workload_requests(unset).cpu == Decimal("0.25")  # replicas default to one

"""Kubernetes is the oracle: the old API server's own conversion against migrator's.

Each case creates an object at a deprecated version on the ``old`` cluster (1.21), reads it
back at the deprecated version and at its replacement (the server converts), runs migrator's
conversion on the first and compares with the second. ``allowed`` names, per case, the paths
where migrator differs on purpose (documented in the conversion modules); metadata the server
sets is identical in both reads, so it needs no exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from migrator.transform.builtin import NORMALIZERS
from migrator.transform.conversions import autoscaling
from migrator.transform.conversions.rewriter import lookup
from migrator.transform.registry import convert_for, find, release_serves
from tests.integration.conversion_support import (collection, csr_request, differences,
                                                  unexplained, unique)
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def old_namespace(old_cluster) -> Iterator[str]:
    """One namespace for the module's objects (the conftest one is per test and needs plain names)."""
    name = unique("t-conversions")
    old_cluster.client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                                   "metadata": {"name": name}})
    yield name
    old_cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")


@dataclass
class Case:
    id: str
    source: str  # deprecated apiVersion
    replacement: str  # what the old server also serves
    body: dict[str, Any]
    allowed: tuple[str, ...] = ()
    ours: str = ""  # the apiVersion our conversion produces when it differs from replacement
    extra: dict[str, Any] = field(default_factory=dict)


def _ingress_cases(version: str) -> list[Case]:
    tag = version.split("/")[0].split(".")[0]
    hosts = [{"host": f"h{i}.example.com", "http": {"paths": [
        {"path": f"/p{i}", "backend": {"serviceName": f"svc{i}", "servicePort": 8080 + i}},
        {"path": "/named", "pathType": "Prefix", "backend": {"serviceName": "named", "servicePort": "http"}},
    ]}} for i in range(4)]
    return [
        Case(f"ingress-{tag}-default-backend-only", version, "networking.k8s.io/v1",
             {"kind": "Ingress", "spec": {"backend": {"serviceName": "web", "servicePort": 80}}}),
        Case(f"ingress-{tag}-many-hosts-named-ports", version, "networking.k8s.io/v1",
             {"kind": "Ingress", "spec": {"rules": hosts, "tls": [{"hosts": ["h0.example.com"], "secretName": "tls"}],
                                          "ingressClassName": "nginx"}}),
        Case(f"ingress-{tag}-class-annotation", version, "networking.k8s.io/v1",
             {"kind": "Ingress", "metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}},
              "spec": {"backend": {"serviceName": "web", "servicePort": "http"}}},
             allowed=("/metadata/annotations", "/spec/ingressClassName")),
    ]


_SELECTOR = {"matchLabels": {"app": "a"}}
_METRICS = [
    {"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 60}},
    {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "200Mi"}},
    {"type": "Pods", "pods": {"metricName": "rps", "targetAverageValue": "10", "selector": _SELECTOR}},
    {"type": "Object", "object": {"target": {"kind": "Service", "name": "web", "apiVersion": "v1"},
                                  "metricName": "hits", "targetValue": "100"}},
    {"type": "Object", "object": {"target": {"kind": "Service", "name": "web", "apiVersion": "v1"},
                                  "metricName": "hits", "targetValue": "100", "averageValue": "5",
                                  "selector": _SELECTOR}},
    {"type": "External", "external": {"metricName": "queue", "metricSelector": _SELECTOR, "targetValue": "30"}},
    {"type": "External", "external": {"metricName": "queue", "targetAverageValue": "3"}},
]
_HPA_SPEC = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
             "minReplicas": 1, "maxReplicas": 5}
_WEBHOOK = {"name": "hook.example.com", "clientConfig": {"url": "https://hooks.example.com/check"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}
_SCHEMA = {"openAPIV3Schema": {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1},
                                              "mode": {"type": "string", "enum": ["a", "b"]}}},
    "status": {"type": "object", "properties": {"ready": {"type": "integer"}}}}}}


def _crd(plural: str, **spec: Any) -> dict[str, Any]:
    group = f"{plural}.migrator.test"
    return {"kind": "CustomResourceDefinition", "metadata": {"name": f"{plural}s.{group}"},
            "spec": {"group": group, "names": {"plural": f"{plural}s", "kind": plural.capitalize()}, **spec}}


CASES = [
    *_ingress_cases("extensions/v1beta1"),
    *_ingress_cases("networking.k8s.io/v1beta1"),
    Case("ingressclass", "networking.k8s.io/v1beta1", "networking.k8s.io/v1",
         {"kind": "IngressClass", "spec": {"controller": "example.com/ingress",
                                           "parameters": {"apiGroup": "k8s.example.com", "kind": "P", "name": "p"}}}),
    Case("cronjob", "batch/v1beta1", "batch/v1",
         {"kind": "CronJob", "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid",
                                      "jobTemplate": {"spec": {"template": {"spec": {
                                          "restartPolicy": "OnFailure",
                                          "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    Case("cronjob-seccomp-annotation", "batch/v1beta1", "batch/v1",
         {"kind": "CronJob", "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {
             "metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}},
             "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}},
         allowed=("/spec/jobTemplate/spec/template/metadata/annotations",
                  "/spec/jobTemplate/spec/template/spec/securityContext")),
    Case("pdb-empty-selector", "policy/v1beta1", "policy/v1",
         {"kind": "PodDisruptionBudget", "spec": {"minAvailable": 1, "selector": {}}}),
    Case("pdb-unset-selector", "policy/v1beta1", "policy/v1",
         {"kind": "PodDisruptionBudget", "spec": {"maxUnavailable": "50%"}}),
    Case("pdb-selector", "policy/v1beta1", "policy/v1",
         {"kind": "PodDisruptionBudget", "spec": {"minAvailable": "30%", "selector": {
             "matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}}}),
    Case("hpa-every-metric", "autoscaling/v2beta1", "autoscaling/v2beta2",
         {"kind": "HorizontalPodAutoscaler", "spec": {**_HPA_SPEC, "metrics": _METRICS}}),
    Case("hpa-no-metrics", "autoscaling/v2beta1", "autoscaling/v2beta2",
         {"kind": "HorizontalPodAutoscaler", "spec": _HPA_SPEC}),
    Case("validating-webhook-no-side-effects", "admissionregistration.k8s.io/v1beta1",
         "admissionregistration.k8s.io/v1",
         {"kind": "ValidatingWebhookConfiguration", "webhooks": [_WEBHOOK]},
         allowed=("/webhooks/0/sideEffects",)),
    Case("mutating-webhook-explicit", "admissionregistration.k8s.io/v1beta1", "admissionregistration.k8s.io/v1",
         {"kind": "MutatingWebhookConfiguration", "webhooks": [
             {**_WEBHOOK, "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
              "admissionReviewVersions": ["v1", "v1beta1"], "matchPolicy": "Equivalent",
              "reinvocationPolicy": "IfNeeded"},
             {**_WEBHOOK, "name": "second.example.com", "sideEffects": "NoneOnDryRun"}]}),
    Case("crd-top-level-validation-several-versions", "apiextensions.k8s.io/v1beta1", "apiextensions.k8s.io/v1",
         _crd("widget", scope="Namespaced", preserveUnknownFields=False, validation=_SCHEMA,
              subresources={"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                    "statusReplicasPath": ".status.ready"}},
              additionalPrinterColumns=[{"name": "Size", "type": "integer", "JSONPath": ".spec.size"}],
              versions=[{"name": "v1", "served": True, "storage": True},
                        {"name": "v1beta1", "served": True, "storage": False}])),
    Case("crd-per-version-schemas", "apiextensions.k8s.io/v1beta1", "apiextensions.k8s.io/v1",
         _crd("gadget", scope="Cluster", preserveUnknownFields=False, versions=[
             {"name": "v2", "served": True, "storage": True, "schema": _SCHEMA,
              "additionalPrinterColumns": [{"name": "Mode", "type": "string", "JSONPath": ".spec.mode"}]},
             {"name": "v1", "served": False, "storage": False, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}])),
    Case("crd-preserve-unknown-fields-default", "apiextensions.k8s.io/v1beta1", "apiextensions.k8s.io/v1",
         _crd("gizmo", version="v1", validation=_SCHEMA),
         allowed=("/spec/preserveUnknownFields",
                  *(f"/spec/versions/0/schema/openAPIV3Schema{node}/x-kubernetes-preserve-unknown-fields"
                    for node in ("", "/properties/spec", "/properties/status")))),
    Case("clusterrole", "rbac.authorization.k8s.io/v1beta1", "rbac.authorization.k8s.io/v1",
         {"kind": "ClusterRole", "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    Case("rolebinding", "rbac.authorization.k8s.io/v1beta1", "rbac.authorization.k8s.io/v1",
         {"kind": "RoleBinding", "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                             "name": "view"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "d", "namespace": "x"}]}),
    Case("storageclass", "storage.k8s.io/v1beta1", "storage.k8s.io/v1",
         {"kind": "StorageClass", "provisioner": "example.com/disk", "parameters": {"type": "ssd"},
          "allowVolumeExpansion": True, "mountOptions": ["noatime"]}),
    Case("csidriver", "storage.k8s.io/v1beta1", "storage.k8s.io/v1",
         {"kind": "CSIDriver", "spec": {"attachRequired": False, "podInfoOnMount": True}}),
    Case("priorityclass", "scheduling.k8s.io/v1beta1", "scheduling.k8s.io/v1",
         {"kind": "PriorityClass", "value": 1000, "description": "d", "preemptionPolicy": "Never"}),
    Case("lease", "coordination.k8s.io/v1beta1", "coordination.k8s.io/v1",
         {"kind": "Lease", "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
    Case("endpointslice-topology", "discovery.k8s.io/v1beta1", "discovery.k8s.io/v1",
         {"kind": "EndpointSlice", "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
          "endpoints": [
              {"addresses": ["10.0.0.1"], "nodeName": "n1", "topology": {
                  "kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "z1", "rack": "r1"}},
              {"addresses": ["10.0.0.2"], "nodeName": "n2", "topology": {"kubernetes.io/hostname": "other"}},
              {"addresses": ["10.0.0.3"], "topology": {"topology.kubernetes.io/zone": "z2"}},
              {"addresses": ["10.0.0.4"]}]}),
    Case("event", "events.k8s.io/v1beta1", "events.k8s.io/v1",
         {"kind": "Event", "eventTime": "2021-01-01T00:00:00.000000Z", "reportingController": "example.com/c",
          "reportingInstance": "i", "action": "Do", "reason": "Because", "type": "Normal",
          "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "note": "n"}),
    Case("runtimeclass", "node.k8s.io/v1beta1", "node.k8s.io/v1",
         {"kind": "RuntimeClass", "handler": "runc", "overhead": {"podFixed": {"cpu": "100m"}},
          "scheduling": {"nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}]}}),
    Case("csr", "certificates.k8s.io/v1beta1", "certificates.k8s.io/v1",
         {"kind": "CertificateSigningRequest", "spec": {"signerName": "example.com/signer", "usages": ["client auth"]}},
         extra={"request": True}),
    Case("apiservice", "apiregistration.k8s.io/v1beta1", "apiregistration.k8s.io/v1",
         {"kind": "APIService", "metadata": {"name": "v1alpha1.migrator.test"},
          "spec": {"group": "migrator.test", "version": "v1alpha1", "groupPriorityMinimum": 100,
                   "versionPriority": 10, "insecureSkipTLSVerify": True,
                   "service": {"namespace": "default", "name": "nowhere", "port": 443}}}),
]


def _create(cluster, case: Case, namespace: str) -> tuple[str, str]:
    body = {"apiVersion": case.source, **case.body, "metadata": dict(case.body.get("metadata") or {})}
    body["metadata"].setdefault("name", unique(case.id[:40]))
    if case.extra.get("request"):
        body["spec"] = {**body["spec"], "request": csr_request()}
    if body["kind"] == "APIService":
        body["metadata"]["name"] = f"v1a{unique('x')[2:]}.migrator.test"
        body["spec"] = {**body["spec"], "version": body["metadata"]["name"].split(".")[0]}
    cluster.client.request("POST", collection(case.source, body["kind"], namespace), body=body)
    return body["kind"], body["metadata"]["name"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_conversion_equals_the_api_servers(case: Case, old_cluster, old_namespace, new_cluster,
                                          new_namespace) -> None:
    kind, name = _create(old_cluster, case, old_namespace)
    try:
        old, server = _read_both(old_cluster, case, kind, old_namespace, name)
        result = find(case.source, kind).convert(old)
        assert result.obj["apiVersion"] == case.replacement
        diff = unexplained(differences(result.obj, server), case.allowed)
        assert not diff, {p: _at(result.obj, p) for p in diff} | {"server": {p: _at(server, p) for p in diff}}
        _accepted_by_new(new_cluster, new_namespace, old)
        # What the old server converts is not what the new one accepts (sideEffects: Unknown):
        # its conversion, after migrator's normalizers, must be accepted too.
        _accepted_by_new(new_cluster, new_namespace, server)
    finally:
        old_cluster.client.request("DELETE", f"{collection(case.source, kind, old_namespace)}/{name}")


@pytest.fixture(scope="module")
def new_namespace(new_cluster) -> Iterator[str]:
    name = unique("t-conversions")
    new_cluster.client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                                   "metadata": {"name": name}})
    yield name
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")


CLUSTER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


def _accepted_by_new(new_cluster, namespace: str, old: dict[str, Any]) -> None:
    """The whole conversion (and the normalizers) for a 1.33 target, accepted by the 1.33 API
    server (dry-run)."""
    obj = convert_for(old, lambda _: True, kind_serves=release_serves(33)).obj
    for _name, normalize in NORMALIZERS:
        obj = normalize(obj).obj
    obj = dict(obj)
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in CLUSTER_SET and k != "namespace"}
    obj.pop("status", None)
    new_cluster.client.request("POST", collection(obj["apiVersion"], obj["kind"], namespace),
                               query={"dryRun": "All"}, body=obj)


def _at(obj: Any, pointer: str) -> Any:
    parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/"))
    return lookup(obj, tuple(int(p) if p.isdigit() else p for p in parts), "<missing>")


def _read_both(cluster, case: Case, kind: str, namespace: str, name: str) -> tuple[dict, dict]:
    """The object at both versions, from the same resourceVersion (controllers write status)."""
    def same_version() -> tuple[dict, dict] | None:
        old = cluster.client.request("GET", f"{collection(case.source, kind, namespace)}/{name}")
        server = cluster.client.request("GET", f"{collection(case.replacement, kind, namespace)}/{name}")
        same = old["metadata"]["resourceVersion"] == server["metadata"]["resourceVersion"]
        return (old, server) if same else None

    return wait_until(f"{kind} {name} read at one resourceVersion through both versions",
                      same_version, timeout=5, interval=0.3)


def test_hpa_behavior_round_trips_through_v2beta1(old_cluster, old_namespace) -> None:
    """spec.behavior (set at v2beta2) lives in an annotation at v2beta1; we restore it."""
    body = {"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "behaving"}, "spec": {**_HPA_SPEC, "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 60, "policies": [
                    {"type": "Pods", "value": 1, "periodSeconds": 30}]}}}}
    base = collection("autoscaling/v2beta2", "HorizontalPodAutoscaler", old_namespace)
    old_cluster.client.request("POST", base, body=body)
    old = old_cluster.client.request("GET", collection("autoscaling/v2beta1", "HorizontalPodAutoscaler",
                                                       old_namespace) + "/behaving")
    server = old_cluster.client.request("GET", f"{base}/behaving")
    assert autoscaling.BEHAVIOR_ANNOTATION in old["metadata"]["annotations"]
    result = find("autoscaling/v2beta1", "HorizontalPodAutoscaler").convert(old)
    assert not differences(result.obj, server)

"""Built-in conversions, pure parts: golden inputs and outputs, no server."""
from __future__ import annotations

import copy
import json

import pytest

from migrator.transform import registry
from migrator.transform.base import Change, Severity
from migrator.transform.checkapis import verdict
from migrator.transform.conversions import lastapplied
from migrator.transform.conversions.admissionregistration import normalize_webhooks
from migrator.transform.conversions.apiextensions import normalize_crd, structural_problems
from migrator.transform.conversions.networking import normalize_ingress
from migrator.transform.conversions.objectmeta import normalize_object_meta
from migrator.transform.conversions.podtemplate import normalize_pod_template
from migrator.transform.conversions.rewriter import Rewriter, make_change

pytestmark = pytest.mark.unit
SERVES = registry.release_serves(33)


def convert(obj):
    before = copy.deepcopy(obj)
    result = registry.convert_for(obj, lambda _: True, kind_serves=SERVES)
    assert obj == before, "input modified"
    return result


def test_rewriter_copies_only_what_it_writes() -> None:
    obj = {"a": {"b": 1}, "c": {"d": 2}}
    rw = Rewriter(obj)
    rw.set(("a", "b"), 5, "why")
    assert obj == {"a": {"b": 1}, "c": {"d": 2}}
    assert rw.obj["c"] is obj["c"] and rw.obj["a"] == {"b": 5}
    assert rw.changes[0].path == "/a/b" and rw.changes[0].before == 1


def test_fast_change_equals_a_change() -> None:
    args = ("/a~1b", "set", "r", Severity.DEFAULT, None, 3, "s")
    assert make_change(*args) == Change(*args)


@pytest.mark.parametrize("selector,expected", [
    ({}, {"matchExpressions": [{"key": "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match",
                                "operator": "Exists"}]}),
    ({"matchExpressions": [{"key": "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match",
                            "operator": "DoesNotExist"}]}, {}),
    ({"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}),
    (None, None),
])
def test_pdb_selector_meaning_is_kept(selector, expected) -> None:
    spec = {"minAvailable": 1} if selector is None else {"minAvailable": 1, "selector": selector}
    result = convert({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "spec": spec})
    assert result.obj["spec"].get("selector") == expected


def test_psp_is_dropped_with_a_pod_security_suggestion() -> None:
    result = convert({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "spec": {"privileged": True}})
    assert result.obj is None and result.changes[0].severity is Severity.DROP
    assert result.changes[0].after["namespaceLabels"] == {"pod-security.kubernetes.io/enforce": "privileged"}


def test_hpa_every_metric_source_to_v2() -> None:
    hpa = {"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "spec": {"metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "targetAverageValue": "1"}},
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "c",
                                                            "targetAverageUtilization": 5}},
        {"type": "Pods", "pods": {"metricName": "m", "targetAverageValue": "2"}},
        {"type": "Object", "object": {"target": {"kind": "S", "name": "s"}, "metricName": "m", "targetValue": "3"}},
        {"type": "External", "external": {"metricName": "q", "targetAverageValue": "4"}}]},
        "status": {"currentMetrics": [{"type": "External", "external": {"metricName": "q", "currentValue": "1"}}]}}
    obj = convert(hpa).obj
    assert obj["apiVersion"] == "autoscaling/v2"
    assert [m[m["type"][0].lower() + m["type"][1:]].get("target") for m in obj["spec"]["metrics"]] == [
        {"type": "AverageValue", "averageValue": "1"}, {"type": "Utilization", "averageUtilization": 5},
        {"type": "AverageValue", "averageValue": "2"}, {"type": "Value", "value": "3"},
        {"type": "AverageValue", "averageValue": "4"}]
    assert obj["spec"]["metrics"][3]["object"]["describedObject"] == {"kind": "S", "name": "s"}
    assert obj["status"]["currentMetrics"][0]["external"] == {"metric": {"name": "q"}, "current": {"value": "1"}}


def test_webhook_old_defaults_are_explicit() -> None:
    obj = convert({"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingWebhookConfiguration",
                   "webhooks": [{"name": "w", "rules": [{"operations": ["*"]}]}]}).obj
    hook = obj["webhooks"][0]
    assert (hook["failurePolicy"], hook["matchPolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"],
            hook["sideEffects"], hook["admissionReviewVersions"], hook["rules"][0]["scope"]) == (
        "Ignore", "Exact", 30, "Never", "NoneOnDryRun", ["v1beta1"], "*")


def test_crd_conversion_webhook_layout_and_scope() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
           "spec": {"version": "v1", "preserveUnknownFields": False,
                    "validation": {"openAPIV3Schema": {"type": "object"}},
                    "conversion": {"strategy": "Webhook", "webhookClientConfig": {"url": "https://x"}}}}
    obj = convert(crd).obj
    assert obj["spec"]["conversion"] == {"strategy": "Webhook", "webhook": {
        "clientConfig": {"url": "https://x"}, "conversionReviewVersions": ["v1beta1"]}}
    assert obj["spec"]["scope"] == "Namespaced" and "version" not in obj["spec"]
    assert obj["spec"]["versions"] == [{"name": "v1", "served": True, "storage": True,
                                        "schema": {"openAPIV3Schema": {"type": "object"}}}]


def test_non_structural_schema_is_flagged() -> None:
    schema = {"type": "object", "properties": {"a": {"properties": {"b": {"type": "string"}}},
                                               "c": {"type": "string", "anyOf": [{"type": "string"}]}}}
    assert len(list(structural_problems(schema))) == 2
    crd = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
           "spec": {"version": "v1", "preserveUnknownFields": False,
                    "validation": {"openAPIV3Schema": schema}}}
    assert [c.severity for c in convert(crd).changes if c.action == "flag"] == [Severity.REVIEW] * 2


def test_seccomp_and_apparmor_annotations_become_fields() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/c": "unconfined", "keep": "x"}},
        "spec": {"containers": [{"name": "c"}]}}
    obj = normalize_pod_template(pod).obj
    assert obj["metadata"]["annotations"] == {"keep": "x"}
    assert obj["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert obj["spec"]["containers"][0]["securityContext"] == {"appArmorProfile": {"type": "Unconfined"}}


def test_last_applied_is_rewritten_to_the_new_version() -> None:
    applied = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "w"},
               "spec": {"backend": {"serviceName": "w", "servicePort": 80}}}
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
        "name": "w", "annotations": {lastapplied.ANNOTATION: json.dumps(applied) + "\n"}}}
    result = convert(ingress)
    rewritten = json.loads(result.obj["metadata"]["annotations"][lastapplied.ANNOTATION])
    assert rewritten["apiVersion"] == "networking.k8s.io/v1" and "defaultBackend" in rewritten["spec"]
    dropped = registry.convert_for(ingress, lambda _: True, kind_serves=SERVES, last_applied="drop")
    assert "annotations" not in dropped.obj["metadata"] or not dropped.obj["metadata"]["annotations"]


def test_flowcontrol_chain_stops_at_the_newest_served_version() -> None:
    plc = {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1", "kind": "PriorityLevelConfiguration",
           "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 0}}}
    on_127 = registry.convert_for(plc, lambda _: True, kind_serves=registry.release_serves(27)).obj
    assert on_127["apiVersion"] == "flowcontrol.apiserver.k8s.io/v1beta3"
    assert convert(plc).obj["spec"]["limited"] == {"nominalConcurrencyShares": 30}


def test_removals_by_release_has_kind_granularity() -> None:
    assert ("storage.k8s.io/v1beta1", "StorageClass") in registry.removals_by_release(22)
    assert ("storage.k8s.io/v1beta1", "CSIStorageCapacity") not in registry.removals_by_release(26)
    assert ("storage.k8s.io/v1beta1", "CSIStorageCapacity") in registry.removals_by_release(27)
    assert ("extensions/v1beta1", "Ingress") not in registry.removals_by_release(21)


def test_csr_with_legacy_signer_is_dropped() -> None:
    result = convert({"apiVersion": "certificates.k8s.io/v1beta1", "kind": "CertificateSigningRequest",
                      "spec": {"request": "x"}})
    assert result.obj is None and result.changes[-1].severity is Severity.DROP


def test_served_objects_pass_through_untouched() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    result = convert(cm)
    assert result.obj is cm and result.changes == []


def test_v1_crd_read_back_from_a_v1beta1_create_loses_preserve_unknown_fields() -> None:
    """What a 1.21 server returns at v1 for a CRD created through v1beta1: v1 create refuses it."""
    schema = {"type": "object", "properties": {"spec": {"type": "object"}}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.com"},
           "spec": {"preserveUnknownFields": True, "versions": [
               {"name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": schema}}]}}
    result = normalize_crd(crd)
    assert "preserveUnknownFields" not in result.obj["spec"]
    assert result.obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    assert [c.severity for c in result.changes] == [Severity.DEFAULT, Severity.DEFAULT]
    assert result.changes[0].after == ["/", "/properties/spec"]
    assert crd["spec"]["preserveUnknownFields"] is True  # the input is not changed
    assert normalize_crd(result.obj).changes == []


PRESERVE = "x-kubernetes-preserve-unknown-fields"


def test_v1beta1_crd_keeps_unknown_fields_wherever_pruning_would_cut() -> None:
    """v1beta1's default kept every unknown field; v1 prunes at every object node that does
    not say x-kubernetes-preserve-unknown-fields: every such node says it after conversion."""
    embedded = {"type": "object", "x-kubernetes-embedded-resource": True,
                "properties": {"metadata": {"type": "object"}}}
    schema = {"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
        "spec": {"type": "object", "properties": {
            "size": {"type": "integer"},
            "nested": {"type": "object", "properties": {"deep": {"type": "object"}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {
                "a": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "byName": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"b": {"type": "string"}}}},
            "template": embedded,
            "open": {"type": "object", PRESERVE: True, "properties": {
                "inner": {"type": "object"}}}}},
        "status": {"type": "object"}}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
           "spec": {"version": "v1", "validation": {"openAPIV3Schema": schema}}}
    result = convert(crd)
    out = result.obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    marked = sorted(p for c in result.changes if c.action == "set" and c.path.endswith(
        "openAPIV3Schema") for p in c.after)
    assert marked == sorted(["/", "/properties/spec", "/properties/spec/properties/nested",
                             "/properties/spec/properties/nested/properties/deep",
                             "/properties/spec/properties/list/items",
                             "/properties/spec/properties/byName/additionalProperties",
                             "/properties/spec/properties/template",
                             "/properties/spec/properties/open/properties/inner",
                             "/properties/status"])
    spec = out["properties"]["spec"]["properties"]
    assert PRESERVE not in spec["labels"] and PRESERVE not in spec["size"]
    assert out["properties"]["metadata"] == schema["properties"]["metadata"]  # ObjectMeta's
    assert spec["template"]["properties"]["metadata"] == {"type": "object"}
    assert all(c.severity in (Severity.INFO, Severity.DEFAULT) for c in result.changes)
    assert not list(structural_problems(out))


def test_crd_that_prunes_already_is_left_pruning() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object"}}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
           "spec": {"version": "v1", "preserveUnknownFields": False,
                    "validation": {"openAPIV3Schema": schema}}}
    assert convert(crd).obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == schema


def test_v1_webhooks_converted_by_the_old_server_are_made_acceptable() -> None:
    """1.21 defaults v1beta1's sideEffects to Unknown and allows repeated names; reading the
    webhook back at v1 keeps both, and a 1.33 create refuses both."""
    hook = {"clientConfig": {"url": "https://a.example.com"}, "admissionReviewVersions": ["v1beta1"]}
    webhooks = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "w"}, "webhooks": [
                    {**hook, "name": "a.example.com", "sideEffects": "Unknown"},
                    {**hook, "name": "a.example.com", "sideEffects": "Some"},
                    {**hook, "name": "a-2.example.com", "sideEffects": "None"},
                    {**hook, "name": "a.example.com", "sideEffects": "NoneOnDryRun"}]}
    before = copy.deepcopy(webhooks)
    result = normalize_webhooks(webhooks)
    assert webhooks == before
    hooks = result.obj["webhooks"]
    assert [h["sideEffects"] for h in hooks] == ["NoneOnDryRun", "NoneOnDryRun", "None", "NoneOnDryRun"]
    assert [h["name"] for h in hooks] == ["a.example.com", "a-3.example.com", "a-2.example.com",
                                          "a-4.example.com"]
    assert {c.path for c in result.changes} == {
        "/webhooks/0/sideEffects", "/webhooks/1/sideEffects", "/webhooks/1/name", "/webhooks/3/name"}
    assert all(c.severity is Severity.REVIEW for c in result.changes)
    assert normalize_webhooks(result.obj).changes == []
    fine = {**webhooks, "webhooks": [hooks[2]]}
    assert normalize_webhooks(fine).obj is fine


def test_check_apis_shows_what_the_normalizers_must_fix_in_served_objects() -> None:
    """A snapshot read at v1 (the old server converted) holds sideEffects: Unknown."""
    served = lambda api_version: api_version in ("v1", "admissionregistration.k8s.io/v1")
    webhook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": "w"}, "webhooks": [{"name": "a.example.com", "sideEffects": "Unknown"}]}
    check = verdict(webhook, served)
    assert check.verdict == "review" and "NoneOnDryRun" in check.details[0]
    assert verdict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                   served).verdict == "ok"


def test_v1beta1_webhooks_with_repeated_names_convert_to_distinct_names() -> None:
    obj = convert({"apiVersion": "admissionregistration.k8s.io/v1beta1",
                   "kind": "MutatingWebhookConfiguration",
                   "webhooks": [{"name": "m.example.com", "sideEffects": "Some"},
                                {"name": "m.example.com", "sideEffects": "None"}]}).obj
    assert [(h["name"], h["sideEffects"]) for h in obj["webhooks"]] == [
        ("m.example.com", "NoneOnDryRun"), ("m-2.example.com", "None")]


def test_cluster_name_goes_from_every_object_meta() -> None:
    """A 1.21 server keeps metadata.clusterName; a 1.33 apply refuses the whole object."""
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {
        "name": "c", "clusterName": "a"}, "spec": {"jobTemplate": {
            "metadata": {"clusterName": "b", "labels": {"x": "y"}},
            "spec": {"template": {"metadata": {"clusterName": "c"}, "spec": {"volumes": [
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"clusterName": "d"}, "spec": {}}}}]}}}}}}
    before = copy.deepcopy(cronjob)
    result = normalize_object_meta(cronjob)
    assert cronjob == before
    assert "clusterName" not in json.dumps(result.obj)
    assert result.obj["spec"]["jobTemplate"]["metadata"] == {"labels": {"x": "y"}}
    assert sorted(c.path for c in result.changes) == [
        "/metadata/clusterName", "/spec/jobTemplate/metadata/clusterName",
        "/spec/jobTemplate/spec/template/metadata/clusterName",
        "/spec/jobTemplate/spec/template/spec/volumes/0/ephemeral/volumeClaimTemplate/metadata/"
        "clusterName"]
    assert {c.severity for c in result.changes} == {Severity.LOSS}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {
        "volumeClaimTemplates": [{"metadata": {"name": "d", "clusterName": "x"}}]}}
    assert normalize_object_meta(sts).obj["spec"]["volumeClaimTemplates"] == [{"metadata": {"name": "d"}}]
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert normalize_object_meta(plain).obj is plain


def test_v1_ingress_converted_by_the_old_server_gets_ingress_class_name() -> None:
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {
        "name": "shop", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"defaultBackend": {"service": {"name": "shop", "port": {"number": 80}}}}}
    result = normalize_ingress(ingress)
    assert result.obj["spec"]["ingressClassName"] == "nginx"
    assert "annotations" not in result.obj["metadata"]  # never both
    assert [c.severity for c in result.changes] == [Severity.REVIEW]
    both = {**ingress, "spec": {**ingress["spec"], "ingressClassName": "nginx"}}
    assert "annotations" not in normalize_ingress(both).obj["metadata"]
    plain = {**ingress, "metadata": {"name": "shop"}}
    assert normalize_ingress(plain).obj is plain and not normalize_ingress(plain).changes

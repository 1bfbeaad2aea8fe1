"""Kinds whose replacement the old cluster does not serve: golden cases, accepted by ``new``.

Each case is converted by ``registry.convert_for`` for a 1.33 target, checked against the
fields the conversion must write (the old defaults above all), and sent to the new cluster
(1.33) with server-side dry-run: the API server must accept it as it is.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from migrator.transform import registry
from tests.integration.conversion_support import collection, unique

TEMPLATE = {"metadata": {"labels": {"app": "a"}, "annotations": {
    "container.seccomp.security.alpha.kubernetes.io/c": "localhost/profiles/p.json"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SERVES = registry.release_serves(33)

# (input, {path: expected value in the converted object})
GOLDEN: list[tuple[dict[str, Any], dict[tuple, Any]]] = [
    ({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "spec": {"template": TEMPLATE,
                                                                       "rollbackTo": {"revision": 2}}},
     {("spec", "selector"): {"matchLabels": {"app": "a"}}, ("spec", "revisionHistoryLimit"): 2147483647,
      ("spec", "progressDeadlineSeconds"): 2147483647, ("spec", "strategy", "rollingUpdate"):
          {"maxUnavailable": 1, "maxSurge": 1}, ("spec", "rollbackTo"): None,
      ("spec", "template", "spec", "containers", 0, "securityContext", "seccompProfile"):
          {"type": "Localhost", "localhostProfile": "profiles/p.json"},
      ("spec", "template", "metadata", "annotations"): None}),
    ({"apiVersion": "apps/v1beta1", "kind": "Deployment", "spec": {"template": TEMPLATE,
                                                                 "strategy": {"type": "Recreate"}}},
     {("spec", "revisionHistoryLimit"): 2, ("spec", "progressDeadlineSeconds"): 600,
      ("spec", "strategy"): {"type": "Recreate"}}),
    ({"apiVersion": "apps/v1beta2", "kind": "Deployment",
      "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE}},
     {("spec", "strategy", "rollingUpdate"): {"maxUnavailable": "25%", "maxSurge": "25%"}}),
    ({"apiVersion": "extensions/v1beta1", "kind": "DaemonSet", "spec": {"template": TEMPLATE,
                                                                      "templateGeneration": 3}},
     {("spec", "updateStrategy"): {"type": "OnDelete"},
      ("metadata", "annotations", "deprecated.daemonset.template.generation"): "3"}),
    ({"apiVersion": "apps/v1beta2", "kind": "DaemonSet",
      "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE}},
     {("spec", "updateStrategy"): {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}),
    ({"apiVersion": "apps/v1beta1", "kind": "StatefulSet", "spec": {"serviceName": "s", "template": TEMPLATE}},
     {("spec", "updateStrategy"): {"type": "OnDelete"}, ("spec", "podManagementPolicy"): "OrderedReady"}),
    ({"apiVersion": "apps/v1beta2", "kind": "StatefulSet", "spec": {
        "serviceName": "s", "selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE}},
     {("spec", "updateStrategy"): {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}),
    ({"apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "spec": {"template": TEMPLATE}},
     {("spec", "selector"): {"matchLabels": {"app": "a"}}}),
    ({"apiVersion": "extensions/v1beta1", "kind": "NetworkPolicy", "spec": {
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                        "ports": [{"port": 80}]}]}},
     {("apiVersion",): "networking.k8s.io/v1"}),
    ({"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}, "maxReplicas": 3,
        "metrics": [{"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "c", "targetAverageUtilization": 50}}]}},
     {("apiVersion",): "autoscaling/v2", ("spec", "metrics", 0, "containerResource"):
         {"name": "cpu", "container": "c", "target": {"type": "Utilization", "averageUtilization": 50}}}),
    ({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1", "kind": "PriorityLevelConfiguration", "spec": {
        "type": "Limited", "limited": {"assuredConcurrencyShares": 7, "limitResponse": {"type": "Reject"}}}},
     {("apiVersion",): "flowcontrol.apiserver.k8s.io/v1", ("spec", "limited", "nominalConcurrencyShares"): 7}),
    ({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta1", "kind": "FlowSchema", "spec": {
        "priorityLevelConfiguration": {"name": "global-default"}, "matchingPrecedence": 5000,
        "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                   "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                      "namespaces": ["*"]}]}]}},
     {("apiVersion",): "flowcontrol.apiserver.k8s.io/v1"}),
    ({"apiVersion": "storage.k8s.io/v1beta1", "kind": "CSIStorageCapacity", "storageClassName": "fast",
      "capacity": "10Gi"}, {("apiVersion",): "storage.k8s.io/v1"}),
    ({"apiVersion": "node.k8s.io/v1alpha1", "kind": "RuntimeClass", "spec": {
        "runtimeHandler": "gvisor", "overhead": {"podFixed": {"cpu": "250m", "memory": "64Mi"}},
        "scheduling": {"nodeSelector": {"sandbox": "gvisor"},
                       "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}]}}},
     {("apiVersion",): "node.k8s.io/v1", ("handler",): "gvisor", ("spec",): None,
      ("overhead", "podFixed", "cpu"): "250m", ("scheduling", "nodeSelector"): {"sandbox": "gvisor"}}),
]


@pytest.fixture(scope="module")
def new_namespace(new_cluster) -> Iterator[str]:
    name = unique("t-golden")
    new_cluster.client.request("POST", "/api/v1/namespaces",
                               body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.mark.parametrize("source,expected", GOLDEN, ids=lambda v: f"{v['apiVersion']}-{v['kind']}"
                         if isinstance(v, dict) and "kind" in v else "")
def test_golden_and_accepted_by_new(source, expected, new_cluster, new_namespace) -> None:
    source = {**source, "metadata": {"name": unique(source["kind"].lower())}}
    result = registry.convert_for(source, lambda _: True, kind_serves=SERVES)
    assert result.obj is not None
    for path, value in expected.items():
        assert registry.lookup(result.obj, path) == value, path
    obj = result.obj
    new_cluster.client.request("POST", collection(obj["apiVersion"], obj["kind"], new_namespace),
                               query={"dryRun": "All"}, body=obj)

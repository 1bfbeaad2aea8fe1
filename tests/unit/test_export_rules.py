"""The skip rules (what a cluster regenerates) and export's strip rules, on plain objects."""
from __future__ import annotations

import copy
import json

import pytest

from migrator.export import strips
from migrator.resources import regenerated
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType

pytestmark = pytest.mark.unit


def rtype(resource: str, group: str = "", version: str = "v1", namespaced: bool = True):
    return ResourceType(group, version, resource, resource.title(), namespaced)


def obj(name: str, namespace: str | None = "shop", **fields) -> dict:
    meta = {"name": name, "uid": "u-1", "resourceVersion": "42",
            "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}],
            **fields.pop("metadata", {})}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, **fields}


OWNED = {"ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "uid": "x",
                              "controller": True}]}


@pytest.mark.parametrize(
    ("resource", "item", "rule"),
    [
        (rtype("pods"), obj("web-1-abc", metadata=OWNED), "owned-by-controller"),
        (rtype("pods"), obj("standalone"), None),
        (rtype("replicasets", "apps"), obj("web-1", metadata=OWNED), "owned-by-controller"),
        (rtype("replicasets", "extensions", "v1beta1"), obj("web-1", metadata=OWNED),
         "owned-by-controller"),  # the rule holds through the legacy group too
        (rtype("jobs", "batch"), obj("nightly-1", metadata=OWNED), "owned-by-controller"),
        (rtype("secrets"), obj("default-token-abcde", type="kubernetes.io/service-account-token"),
         "service-account-token"),
        (rtype("secrets"), obj("creds", type="Opaque"), None),
        (rtype("configmaps"), obj("kube-root-ca.crt"), "root-ca-configmap"),
        (rtype("serviceaccounts"), obj("default", secrets=[{"name": "default-token-abcde"}]),
         "default-service-account"),
        (rtype("serviceaccounts"), obj("default", imagePullSecrets=[{"name": "registry"}]),
         None),  # customised by the user: kept
        (rtype("services"), obj("kubernetes", "default"), "kubernetes-service"),
        (rtype("services"), obj("kubernetes", "shop"), None),
        (rtype("endpoints"), obj("web", metadata={"annotations": {
            "endpoints.kubernetes.io/last-change-trigger-time": "x"}}), "controller-endpoints"),
        (rtype("endpoints"), obj("web", metadata={"labels": {
            "endpoints.kubernetes.io/managed-by": "endpoint-controller"}}), "controller-endpoints"),
        (rtype("endpoints"), obj("external"), None),
        (rtype("endpoints"), obj("web", subsets=[{"addresses": [{"ip": "10.244.0.5", "targetRef": {
            "kind": "Pod", "name": "web-1", "uid": "1f1e"}}]}]), "controller-endpoints"),
        (rtype("endpoints"), obj("external", subsets=[{"addresses": [{"ip": "192.0.2.5"}]}]), None),
        (rtype("endpointslices", "discovery.k8s.io"), obj("web-abc", metadata={"labels": {
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}),
         "controller-endpointslice"),
        (rtype("apiservices", "apiregistration.k8s.io", namespaced=False),
         obj("v1.apps", None, metadata={"labels": {
             "kube-aggregator.kubernetes.io/automanaged": "onstart"}}),
         "automanaged-apiservice"),
        (rtype("clusterroles", "rbac.authorization.k8s.io", namespaced=False),
         obj("admin", None, metadata={"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}),
         "bootstrap-rbac"),
        (rtype("clusterroles", "rbac.authorization.k8s.io", namespaced=False),
         obj("mine", None), None),
        (rtype("priorityclasses", "scheduling.k8s.io", namespaced=False),
         obj("system-node-critical", None), "system-priority-class"),
        (rtype("flowschemas", "flowcontrol.apiserver.k8s.io", "v1beta1", False),
         obj("exempt", None), "builtin-flow-control"),
        (rtype("flowschemas", "flowcontrol.apiserver.k8s.io", "v1beta1", False),
         obj("exempt", None, metadata={"annotations": {
             "apf.kubernetes.io/autoupdate-spec": "false"}}), None),  # customised: kept
        (rtype("events"), obj("e"), "event"),
        (rtype("events", "events.k8s.io"), obj("e"), "event"),
        (rtype("nodes", namespaced=False), obj("n1", None), "node"),
    ],
)
def test_classify(resource, item, rule) -> None:
    found = regenerated.classify(item, resource.group, resource.resource)
    assert (found.name if found else None) == rule
    if found:
        assert strips.rule_legend()[found.name] == found.reason


def test_metadata_and_status_stripped_status_kept_aside_for_custom_resources() -> None:
    item = obj("w", status={"ready": True})
    item["metadata"]["ownerReferences"] = OWNED["ownerReferences"]
    out, stripped, aside, _kept = strips.strip(copy.deepcopy(item), rtype("widgets", "example.com"))
    assert set(out["metadata"]) == {"name", "namespace", "ownerReferences"}
    assert "status" not in out and aside == {"status": {"ready": True}}
    assert set(stripped) == {"metadata.uid", "metadata.resourceVersion",
                             "metadata.creationTimestamp", "metadata.managedFields", "status"}
    assert strips.strip(copy.deepcopy(item), rtype("configmaps")).aside is None


def test_service_ips_and_node_ports() -> None:
    svc = obj("web", spec={"type": "LoadBalancer", "clusterIP": "10.96.0.5",
                           "clusterIPs": ["10.96.0.5"], "healthCheckNodePort": 31000,
                           "ports": [{"port": 80, "nodePort": 30080}]},
              status={"loadBalancer": {}})
    out, stripped, aside, kept_notes = strips.strip(copy.deepcopy(svc), rtype("services"))
    assert out["spec"] == {"type": "LoadBalancer", "ports": [{"port": 80}]}
    assert {"spec.clusterIP(s)", "spec.healthCheckNodePort", "spec.ports[].nodePort"} <= set(
        stripped)
    assert aside is None and kept_notes == []  # an empty load balancer status is not kept
    kept = strips.strip(copy.deepcopy(svc), rtype("services"), keep_node_ports=True).obj
    assert kept["spec"]["ports"] == [{"port": 80, "nodePort": 30080}]
    kept, stripped, _, _ = strips.strip(copy.deepcopy(svc), rtype("services"), keep_cluster_ips=True)
    assert (kept["spec"]["clusterIP"], kept["spec"]["clusterIPs"]) == ("10.96.0.5", ["10.96.0.5"])
    assert "spec.clusterIP(s)" not in stripped
    assert "healthCheckNodePort" not in kept["spec"]  # allocated anew whatever is kept
    headless = obj("db", spec={"clusterIP": "None", "clusterIPs": ["None"]})
    out, stripped, _, _ = strips.strip(headless, rtype("services"))
    assert out["spec"]["clusterIP"] == "None" and "spec.clusterIP(s)" not in stripped


def _fields(*ports: int) -> dict:
    """managedFields of a client that set the nodePort of the given ports (TCP)."""
    return {"f:spec": {"f:ports": {f'k:{{"port":{p},"protocol":"TCP"}}': {"f:nodePort": {}}
                                   for p in ports}}}


def test_node_ports_a_client_set_are_kept_and_reported() -> None:
    """managedFields say who set a nodePort; allocated ones belong to no manager."""
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
             {"name": "udp", "port": 80, "protocol": "UDP", "nodePort": 30081},
             {"name": "other", "port": 81, "protocol": "TCP", "nodePort": 32577}]
    svc = obj("web", metadata={"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": _fields(80)},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}}]},
        spec={"type": "NodePort", "ports": ports})
    out, stripped, _aside, kept = strips.strip(copy.deepcopy(svc), rtype("services"))
    assert [p.get("nodePort") for p in out["spec"]["ports"]] == [30080, None, None]
    assert "spec.ports[].nodePort" in stripped and "managedFields" not in out["metadata"]
    assert kept == ["port 80/TCP nodePort 30080: set by kubectl-client-side-apply"]
    everything = strips.strip(copy.deepcopy(svc), rtype("services"), keep_node_ports=True)
    assert [p["nodePort"] for p in everything.obj["spec"]["ports"]] == [30080, 30081, 32577]
    assert everything.kept == []  # --keep-node-ports keeps all: nothing to single out


def test_node_ports_without_managed_fields_fall_back_to_last_applied() -> None:
    applied = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [
        {"port": 80, "nodePort": 30080}, {"port": 81}], "healthCheckNodePort": 31999}}
    svc = obj("web", metadata={"managedFields": None, "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)}},
        spec={"type": "LoadBalancer", "healthCheckNodePort": 31999, "ports": [
            {"port": 80, "protocol": "TCP", "nodePort": 30080},
            {"port": 81, "protocol": "TCP", "nodePort": 30555}]})
    out, stripped, _aside, kept = strips.strip(copy.deepcopy(svc), rtype("services"))
    assert [p.get("nodePort") for p in out["spec"]["ports"]] == [30080, None]
    assert out["spec"]["healthCheckNodePort"] == 31999
    assert "spec.healthCheckNodePort" not in stripped
    assert kept == ["healthCheckNodePort 31999: set by kubectl apply (last-applied annotation)",
                    "port 80/TCP nodePort 30080: set by kubectl apply (last-applied annotation)"]


def test_workload_status_is_kept_aside_for_readiness_on_the_source() -> None:
    sts = obj("db", spec={"replicas": 1}, status={"replicas": 1, "readyReplicas": 0})
    assert strips.strip(sts, rtype("statefulsets", "apps")).aside == {
        "status": {"replicas": 1, "readyReplicas": 0}}
    assert strips.strip(obj("c", status={"phase": "Pending"}),
                        rtype("persistentvolumeclaims")).aside == {"status": {"phase": "Pending"}}


def test_volumes_pods_jobs_and_service_accounts() -> None:
    pv = obj("pv1", None, spec={"claimRef": {"name": "c", "namespace": "shop", "uid": "u",
                                             "resourceVersion": "7"}},
             status={"phase": "Bound"})
    out, _stripped, aside, _kept = strips.strip(pv, rtype("persistentvolumes", namespaced=False))
    assert out["spec"]["claimRef"] == {"name": "c", "namespace": "shop"}
    assert aside == {"status": {"phase": "Bound"}}
    pvc = obj("c", metadata={"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                             "keep": "me"}}, spec={"volumeName": "pv1"})
    out, stripped, _, _ = strips.strip(pvc, rtype("persistentvolumeclaims"))
    assert out["metadata"]["annotations"] == {"keep": "me"} and out["spec"]["volumeName"] == "pv1"
    pod = obj("p", spec={"nodeName": "node-1", "containers": []})
    assert "nodeName" not in strips.strip(pod, rtype("pods"))[0]["spec"]
    job = obj("j", spec={"selector": {"matchLabels": {"controller-uid": "x"}}, "template": {
        "metadata": {"labels": {"controller-uid": "x", "job-name": "j", "app": "a"}}}})
    out, stripped, _, _ = strips.strip(job, rtype("jobs", "batch"))
    assert "selector" not in out["spec"] and "spec.selector (generated)" in stripped
    assert out["spec"]["template"]["metadata"]["labels"] == {"job-name": "j", "app": "a"}
    manual = obj("m", spec={"manualSelector": True, "selector": {"matchLabels": {"a": "b"}}})
    assert strips.strip(manual, rtype("jobs", "batch"))[0]["spec"]["selector"]
    sa = obj("app", secrets=[{"name": "app-token-x1y2z"}, {"name": "mine"}])
    out, stripped, _, _ = strips.strip(sa, rtype("serviceaccounts"))
    assert out["secrets"] == [{"name": "mine"}] and "secrets[token]" in stripped


def test_type_skips() -> None:
    assert regenerated.type_skip(*rtype("leases", "coordination.k8s.io").identity).name == "lease"
    assert regenerated.type_skip(*rtype("controllerrevisions", "apps").identity).name == "controller-revision"
    assert regenerated.type_skip(*rtype("configmaps").identity) is None


def test_namespace_scope() -> None:
    default = Scope.build(include_system_namespaces=False)
    assert default.namespaces_to_list() is None
    assert default.field_selector() == (
        "metadata.namespace!=kube-node-lease,metadata.namespace!=kube-public,"
        "metadata.namespace!=kube-system")
    assert default.skip_rule("kube-system").name == "system-namespace"
    assert default.skip_rule("shop") is None
    narrowed = Scope.build(include_namespaces=["shop", "kube-system", "shop"], exclude_namespaces=["shop"],
                           include_system_namespaces=False)
    assert narrowed.namespaces_to_list() == ["kube-system"]  # named: included after all
    assert narrowed.field_selector() is None
    assert narrowed.skip_rule("shop").name == "namespace-filtered"
    assert Scope.build(include_system_namespaces=True).field_selector() is None

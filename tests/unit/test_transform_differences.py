"""Cluster-difference rules on plain objects."""
from __future__ import annotations

import pytest

from migrator.resources.inventory import TARGET_WINS, target_wins_of
from migrator.transform.differences import DifferencesConfig, applies, build, parse_cidrs

pytestmark = pytest.mark.unit


def run(config: DifferencesConfig, obj: dict) -> list:
    changes = []
    kind = (obj["apiVersion"].rpartition("/")[0], obj["kind"])
    for rule in build(config):
        if applies(rule, kind):
            changes += rule.apply(obj)
    return changes


def service(**spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"},
            "spec": dict(spec)}


REMAP = DifferencesConfig(cluster_ip="remap",
                          service_cidrs=parse_cidrs(["10.96.0.0/16=10.112.0.0/16"], "x"))


def test_cluster_ip_remap_keeps_the_offset() -> None:
    svc = service(clusterIP="10.96.3.10", clusterIPs=["10.96.3.10"])
    changes = run(REMAP, svc)
    assert svc["spec"] == {"clusterIP": "10.112.3.10", "clusterIPs": ["10.112.3.10"]}
    assert [c.path for c in changes] == ["/spec/clusterIP", "/spec/clusterIPs"]


def test_cluster_ip_outside_the_old_range_is_dropped_for_review() -> None:
    svc = service(clusterIP="192.168.0.1")
    changes = run(REMAP, svc)
    assert "clusterIP" not in svc["spec"] and changes[0].severity.value == "review"


@pytest.mark.parametrize("policy", ["drop", "keep", "remap"])
def test_headless_services_are_untouched(policy: str) -> None:
    svc = service(clusterIP="None", clusterIPs=["None"])
    config = DifferencesConfig(cluster_ip=policy, service_cidrs=REMAP.service_cidrs)
    assert run(config, svc) == [] and svc["spec"]["clusterIP"] == "None"


def test_cluster_ip_drop_and_keep() -> None:
    svc = service(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"])
    assert run(DifferencesConfig(cluster_ip="keep"), svc) == []
    run(DifferencesConfig(cluster_ip="drop"), svc)
    assert svc["spec"] == {}


def test_storage_class_follows_statefulset_claim_templates() -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"volumeClaimTemplates": [
               {"metadata": {"name": "data"}, "spec": {"storageClassName": "standard"}},
               {"metadata": {"name": "logs", "annotations": {
                   "volume.beta.kubernetes.io/storage-class": "standard"}}, "spec": {}}]}}
    config = DifferencesConfig(storage_classes={"standard": "fast"})
    changes = run(config, sts)
    templates = sts["spec"]["volumeClaimTemplates"]
    assert templates[0]["spec"]["storageClassName"] == "fast"
    assert templates[1]["metadata"]["annotations"] == {
        "volume.beta.kubernetes.io/storage-class": "fast"}
    assert changes[1].path == (
        "/spec/volumeClaimTemplates/1/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
           "spec": {"storageClassName": "standard"}}
    storage_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                     "metadata": {"name": "standard"}}
    run(config, pvc)
    run(config, storage_class)
    assert pvc["spec"]["storageClassName"] == "fast"
    assert storage_class["metadata"]["name"] == "fast"


def test_a_renamed_storage_class_yields_to_the_targets_own() -> None:
    """The new snapshot's manifest names it; the import and verify read it back (inventory)."""
    config = DifferencesConfig(storage_classes={"standard": "fast"})
    wins = config.target_wins()
    assert [(w["group"], w["kind"], w["name"]) for w in wins] == [
        ("storage.k8s.io", "StorageClass", "fast")]
    assert "--storage-class standard=fast" in wins[0]["why"]
    manifest = {"transform": {TARGET_WINS: wins}}
    assert target_wins_of(manifest) == {("storage.k8s.io", "StorageClass", "", "fast"): wins[0]["why"]}
    assert target_wins_of({"transform": {}}) == {} and DifferencesConfig().target_wins() == []


def test_zone_mapping_in_pv_node_affinity() -> None:
    pv = {"apiVersion": "v1", "kind": "PersistentVolume",
          "metadata": {"name": "pv", "labels": {"topology.kubernetes.io/zone": "a"}},
          "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
              {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "z"]},
              {"key": "other", "operator": "In", "values": ["a"]}]}]}}}}
    run(DifferencesConfig(zones={"a": "b"}), pv)
    expressions = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert expressions[0]["values"] == ["b", "z"] and expressions[1]["values"] == ["a"]
    assert pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == "b"


REGISTRY = DifferencesConfig(registries={"registry.old": "registry.new/mirror"})


def test_registry_rewrite_in_init_and_ephemeral_containers() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "i", "image": "registry.old/init:1"}],
        "containers": [{"name": "c", "image": "registry.older/app:1"}],
        "ephemeralContainers": [{"name": "e", "image": "registry.old/debug"}]}}
    changes = run(REGISTRY, pod)
    assert pod["spec"]["initContainers"][0]["image"] == "registry.new/mirror/init:1"
    assert pod["spec"]["containers"][0]["image"] == "registry.older/app:1"  # not a prefix match
    assert pod["spec"]["ephemeralContainers"][0]["image"] == "registry.new/mirror/debug"
    assert [c.path for c in changes] == ["/spec/initContainers/0/image",
                                         "/spec/ephemeralContainers/0/image"]


def test_registry_rewrite_in_cronjob_job_template() -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "registry.old/job:2"}]}}}}}}
    changes = run(REGISTRY, cron)
    assert changes[0].path == "/spec/jobTemplate/spec/template/spec/containers/0/image"
    assert changes[0].after == "registry.new/mirror/job:2"


NAMESPACES = DifferencesConfig(namespaces={"shop": "shop-v2"})


def test_namespace_rename_follows_rolebinding_subjects() -> None:
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "b"}, "subjects": [
                   {"kind": "ServiceAccount", "name": "sa", "namespace": "shop"},
                   {"kind": "ServiceAccount", "name": "sa", "namespace": "other"},
                   {"kind": "User", "name": "alice"}]}
    run(NAMESPACES, binding)
    assert [s.get("namespace") for s in binding["subjects"]] == ["shop-v2", "other", None]
    role_binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "b", "namespace": "shop"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "shop"}]}
    changes = run(NAMESPACES, role_binding)
    assert role_binding["metadata"]["namespace"] == "shop-v2"
    assert {c.path for c in changes} == {"/metadata/namespace", "/subjects/0/namespace"}


def test_namespace_rename_follows_pv_claim_refs_and_the_namespace_itself() -> None:
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"},
          "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop",
                                "name": "data"}}}
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}}
    run(NAMESPACES, pv)
    run(NAMESPACES, ns)
    assert pv["spec"]["claimRef"]["namespace"] == "shop-v2"
    assert ns["metadata"] == {"name": "shop-v2",
                              "labels": {"kubernetes.io/metadata.name": "shop-v2"}}


def test_namespace_rename_follows_webhook_and_apiservice_refs() -> None:
    hook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "w"}, "webhooks": [{"name": "x", "clientConfig": {
                "service": {"namespace": "shop", "name": "hook"}}}]}
    api = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
           "metadata": {"name": "v1.x"}, "spec": {"service": {"namespace": "shop", "name": "a"}}}
    run(NAMESPACES, hook)
    run(NAMESPACES, api)
    assert hook["webhooks"][0]["clientConfig"]["service"]["namespace"] == "shop-v2"
    assert api["spec"]["service"]["namespace"] == "shop-v2"


def test_network_policy_ip_blocks_follow_the_pod_cidr() -> None:
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "p", "namespace": "a"}, "spec": {"ingress": [{"from": [
                  {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.5.0/24"]}},
                  {"ipBlock": {"cidr": "10.0.0.0/8"}},
                  {"ipBlock": {"cidr": "192.168.0.0/16"}}]}]}}
    config = DifferencesConfig(pod_cidrs=parse_cidrs(["10.244.0.0/16=10.248.0.0/16"], "x"))
    changes = run(config, policy)
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0]["ipBlock"] == {"cidr": "10.248.0.0/16", "except": ["10.248.5.0/24"]}
    assert peers[1]["ipBlock"]["cidr"] == "10.0.0.0/8"  # wider: a person decides
    assert [c.severity.value for c in changes] == ["info", "info", "review"]


def test_ingress_class_mapping() -> None:
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "i", "namespace": "a"}, "spec": {"ingressClassName": "nginx"}}
    ingress_class = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                     "metadata": {"name": "nginx"}}
    config = DifferencesConfig(ingress_classes={"nginx": "nginx-v2"})
    run(config, ingress)
    run(config, ingress_class)
    assert ingress["spec"]["ingressClassName"] == "nginx-v2"
    assert ingress_class["metadata"]["name"] == "nginx-v2"


def test_flags_override_the_file_key_by_key() -> None:
    file = DifferencesConfig(namespaces={"a": "b"}, registries={"r": "s"})
    merged = file.merged(DifferencesConfig(namespaces={"a": "c"}))
    assert merged.namespaces == {"a": "c"} and merged.registries == {"r": "s"}
    assert merged.to_dict() == {"registries": {"r": "s"}, "namespaces": {"a": "c"}}

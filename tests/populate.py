"""Fill a cluster with a rich set of objects: every built-in kind, several at deprecated versions.

Used by the export tests and reusable by every later stage (import, verify): ``populate``
creates one namespace of its own plus a few uniquely named cluster-scoped objects (two CRDs,
one served through ``apiextensions.k8s.io/v1beta1``, with custom resources), records what it
made in a :class:`Population`, and ``Population.cleanup`` removes all of it.

Objects are created at the deprecated group/version when the cluster still serves it (the old
cluster: extensions/v1beta1 Ingress, batch/v1beta1 CronJob, policy/v1beta1 PDB and PSP,
autoscaling/v2beta1 HPA, apiextensions.k8s.io/v1beta1 CRD), else at the current one.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster, discover
from migrator.kube.discovery import group_version_path
from tests.waiting import wait_until

# Distinctive values tests look for in stored bytes (encryption) and in exported objects.
SECRET_PLAINTEXT = "s3cr3t-migrator-plaintext-do-not-leak"
BINARY = bytes(range(256))  # not UTF-8: must survive as base64 exactly
IMAGE = "registry.example/app:1.0"
STS_CLAIM = "data-db-0"  # the claim of the StatefulSet "db" (template "data", replica 0)


@dataclass
class Created:
    """One object made by :func:`populate`."""

    group_version: str
    resource: str
    name: str
    namespace: str | None

    def path(self) -> str:
        base = group_version_path(self.group_version)
        if self.namespace:
            return f"{base}/namespaces/{self.namespace}/{self.resource}/{self.name}"
        return f"{base}/{self.resource}/{self.name}"


@dataclass
class Population:
    """What :func:`populate` made; ``namespace`` holds every namespaced object."""

    cluster: Cluster
    namespace: str
    suffix: str
    created: list[Created] = field(default_factory=list)
    crd_group: str = ""
    crd_group_v1beta1: str = ""

    def cluster_scoped(self) -> list[Created]:
        return [c for c in self.created if c.namespace is None]

    def names(self, resource: str) -> list[str]:
        """Names of the objects made of ``resource`` (plural), whatever their version."""
        return sorted(c.name for c in self.created if c.resource == resource)

    def cleanup(self) -> None:
        """Delete everything made, custom resources before their CRDs, the namespace last."""
        order = sorted(
            self.cluster_scoped(), key=lambda c: c.resource == "customresourcedefinitions"
        )
        for item in order:
            _delete(self.cluster, item.path())
        _delete(self.cluster, f"/api/v1/namespaces/{self.namespace}")


def _delete(cluster: Cluster, path: str) -> None:
    try:
        cluster.request("DELETE", path)
    except ApiError as exc:
        if exc.status != 404:
            raise


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def populate(cluster: Cluster, *, prefix: str = "pop") -> Population:
    """Create the namespace, its objects and the cluster-scoped ones; see the module doc."""
    suffix = uuid.uuid4().hex[:8]
    ns = f"{prefix}-{suffix}"
    pop = Population(cluster=cluster, namespace=ns, suffix=suffix)
    found = discover(cluster)

    def served(resource: str, *candidates: str) -> str | None:
        """The first of ``candidates`` (oldest first) that serves ``resource``, if any."""
        for gv in candidates:
            if any(r.name == resource for r in found.resources(gv)):
                return gv
        return None

    def create(gv: str, resource: str, body: dict[str, Any], namespaced: bool = True,
               ) -> dict[str, Any]:
        body = {"apiVersion": gv, **body}
        meta = body["metadata"]
        base = group_version_path(gv)
        path = f"{base}/namespaces/{ns}/{resource}" if namespaced else f"{base}/{resource}"
        made: dict[str, Any] = cluster.request("POST", path, body=body)
        pop.created.append(Created(gv, resource, meta["name"], ns if namespaced else None))
        return made

    def owned_config(name: str, owner: dict[str, Any]) -> None:
        """A ConfigMap owned (not controlled) by ``owner``: export keeps it, import relinks it."""
        ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
               "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
        create("v1", "configmaps", {"kind": "ConfigMap", "metadata": {
            "name": name, "ownerReferences": [ref]}, "data": {"owner": ref["name"]}})

    cluster.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"team": "shop"}, "annotations": {"owner": "sre"}},
    })
    labels = {"app": "web", "tier": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": IMAGE,
                                 "ports": [{"containerPort": 8080}]}]},
    }
    # -- configuration ----------------------------------------------------------------------
    create("v1", "configmaps", {"kind": "ConfigMap", "metadata": {"name": "settings",
           "labels": {"tier": "web"}}, "data": {"mode": "prod", "greeting": "héllo wörld"},
           "binaryData": {"blob.bin": _b64(BINARY)}})
    create("v1", "secrets", {"kind": "Secret", "metadata": {"name": "credentials"},
           "type": "Opaque", "data": {"password": _b64(SECRET_PLAINTEXT),
                                       "key.bin": _b64(BINARY)}})
    create("v1", "secrets", {"kind": "Secret", "metadata": {"name": "registry"},
           "type": "kubernetes.io/dockerconfigjson",
           "data": {".dockerconfigjson": _b64('{"auths":{}}')}})
    create("v1", "serviceaccounts", {"kind": "ServiceAccount", "metadata": {"name": "app"},
           "imagePullSecrets": [{"name": "registry"}]})
    create("v1", "resourcequotas", {"kind": "ResourceQuota", "metadata": {"name": "quota"},
           "spec": {"hard": {"pods": "50"}}})
    create("v1", "limitranges", {"kind": "LimitRange", "metadata": {"name": "limits"},
           "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m"}}]}})
    create("v1", "podtemplates", {"kind": "PodTemplate", "metadata": {"name": "tmpl"},
           "template": template})
    # -- RBAC -------------------------------------------------------------------------------
    rbac = "rbac.authorization.k8s.io/v1"
    create(rbac, "roles", {"kind": "Role", "metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    create(rbac, "rolebindings", {"kind": "RoleBinding", "metadata": {"name": "reader"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                       "name": "reader"},
           "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]})
    create(rbac, "clusterroles", {"kind": "ClusterRole",
           "metadata": {"name": f"pop-reader-{suffix}"}, "rules": [
               {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}, False)
    create(rbac, "clusterrolebindings", {"kind": "ClusterRoleBinding",
           "metadata": {"name": f"pop-reader-{suffix}"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": f"pop-reader-{suffix}"},
           "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}, False)
    # -- workloads --------------------------------------------------------------------------
    selector = {"matchLabels": labels}
    # extensions/v1beta1 Deployments went in 1.16: a 1.21 cluster makes them in apps/v1.
    web = create(served("deployments", "extensions/v1beta1", "apps/v1") or "apps/v1",
                 "deployments", {"kind": "Deployment", "metadata": {"name": "web", "labels": labels},
                                 "spec": {"replicas": 2, "selector": selector,
                                          "template": template}})
    owned_config("web-owned", {**web, "apiVersion": "apps/v1", "kind": "Deployment"})
    create("apps/v1", "deployments", {"kind": "Deployment", "metadata": {"name": "api"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                    "template": {**template, "metadata": {"labels": {"app": "api"}}}}})
    create("apps/v1", "daemonsets", {"kind": "DaemonSet", "metadata": {"name": "agent"},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {**template, "metadata": {"labels": {"app": "agent"}}}}})
    create("apps/v1", "statefulsets", {"kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 1,
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {**template, "metadata": {"labels": {"app": "db"}}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "storageClassName": f"pop-{suffix}",
                        "resources": {"requests": {"storage": "1Gi"}}}}]}})
    create("apps/v1", "replicasets", {"kind": "ReplicaSet", "metadata": {"name": "lonely"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "lonely"}},
                    "template": {**template, "metadata": {"labels": {"app": "lonely"}}}}})
    create("v1", "replicationcontrollers", {"kind": "ReplicationController",
           "metadata": {"name": "legacy"}, "spec": {"replicas": 0, "selector": {"app": "legacy"},
           "template": {**template, "metadata": {"labels": {"app": "legacy"}}}}})
    create("v1", "pods", {"kind": "Pod", "metadata": {"name": "standalone",
           "labels": {"app": "standalone"}}, "spec": template["spec"]})
    job_spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "job", "image": IMAGE}]}}}
    create("batch/v1", "jobs", {"kind": "Job", "metadata": {"name": "once"}, "spec": job_spec})
    create(served("cronjobs", "batch/v1beta1", "batch/v1") or "batch/v1", "cronjobs", {"kind": "CronJob",
           "metadata": {"name": "nightly"},
           "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job_spec}}})
    hpa_gv = served("horizontalpodautoscalers", "autoscaling/v2beta1", "autoscaling/v2")
    create(hpa_gv or "autoscaling/v2", "horizontalpodautoscalers", _hpa(hpa_gv or ""))
    create(served("poddisruptionbudgets", "policy/v1beta1", "policy/v1") or "policy/v1",
           "poddisruptionbudgets",
           {"kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": selector}})
    # -- networking -------------------------------------------------------------------------
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    services = {
        "web": {"type": "ClusterIP", "selector": labels, "ports": ports},
        "web-nodeport": {"type": "NodePort", "selector": labels, "ports": ports},
        "web-lb": {"type": "LoadBalancer", "selector": labels, "ports": ports,
                   "externalTrafficPolicy": "Local"},
        "db": {"clusterIP": "None", "selector": {"app": "db"}, "ports": ports},
        "external": {"type": "ExternalName", "externalName": "db.example.com"},
        "manual": {"ports": ports},  # no selector: its Endpoints are the user's
    }
    for name, spec in services.items():
        create("v1", "services", {"kind": "Service", "metadata": {"name": name}, "spec": spec})
    create("v1", "endpoints", {"kind": "Endpoints", "metadata": {"name": "manual"},
           "subsets": [{"addresses": [{"ip": "192.0.2.10"}],
                        "ports": [{"name": "http", "port": 8080}]}]})
    ingress_gv = served("ingresses", "extensions/v1beta1", "networking.k8s.io/v1")
    create(ingress_gv, "ingresses", _legacy_ingress() if ingress_gv != "networking.k8s.io/v1"
           else _ingress("legacy"))
    create("networking.k8s.io/v1", "ingresses", _ingress("current"))
    create("networking.k8s.io/v1", "ingressclasses", {"kind": "IngressClass",
           "metadata": {"name": f"pop-{suffix}"}, "spec": {"controller": "example.com/ingress"}},
           False)
    create("networking.k8s.io/v1", "networkpolicies", {"kind": "NetworkPolicy",
           "metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    # -- storage ----------------------------------------------------------------------------
    create("storage.k8s.io/v1", "storageclasses", {"kind": "StorageClass",
           "metadata": {"name": f"pop-{suffix}"}, "provisioner": "example.com/none",
           "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}, False)
    # No provisioner serves the class: every claim has a volume made beforehand, pre-bound to
    # it by claimRef (static provisioning), the StatefulSet's template claim included.
    for pv, pvc in ((f"pop-{suffix}-pv1", "claim-1"), (f"pop-{suffix}-pv2", "claim-2"),
                    (f"sts-{suffix}-data-db-0", STS_CLAIM)):
        create("v1", "persistentvolumes", {"kind": "PersistentVolume", "metadata": {"name": pv},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": f"pop-{suffix}",
                        "hostPath": {"path": f"/tmp/{pv}"},
                        "claimRef": {"namespace": ns, "name": pvc}}}, False)
        if pvc == STS_CLAIM:
            continue  # the StatefulSet controller makes the claim from its template
        create("v1", "persistentvolumeclaims", {"kind": "PersistentVolumeClaim",
               "metadata": {"name": pvc}, "spec": {"accessModes": ["ReadWriteOnce"],
               "storageClassName": f"pop-{suffix}", "volumeName": pv,
               "resources": {"requests": {"storage": "1Gi"}}}})
    # -- cluster policy ---------------------------------------------------------------------
    create("scheduling.k8s.io/v1", "priorityclasses", {"kind": "PriorityClass",
           "metadata": {"name": f"pop-{suffix}"}, "value": 1000}, False)
    if served("podsecuritypolicies", "policy/v1beta1"):
        create("policy/v1beta1", "podsecuritypolicies", {"kind": "PodSecurityPolicy",
               "metadata": {"name": f"pop-{suffix}"}, "spec": {
                   "privileged": False, "seLinux": {"rule": "RunAsAny"},
                   "runAsUser": {"rule": "MustRunAsNonRoot"},
                   "supplementalGroups": {"rule": "RunAsAny"}, "fsGroup": {"rule": "RunAsAny"},
                   "volumes": ["configMap", "secret"]}}, False)
    # -- custom resources -------------------------------------------------------------------
    pop.crd_group = f"v1-{suffix}.pop.migrator.test"
    _crd(pop, create, "apiextensions.k8s.io/v1", pop.crd_group, "Widget", "widgets")
    if served("customresourcedefinitions", "apiextensions.k8s.io/v1beta1"):
        pop.crd_group_v1beta1 = f"b1-{suffix}.pop.migrator.test"
        _crd(pop, create, "apiextensions.k8s.io/v1beta1", pop.crd_group_v1beta1,
             "Gadget", "gadgets")
    for group, plural, kind in ((pop.crd_group, "widgets", "Widget"),
                                (pop.crd_group_v1beta1, "gadgets", "Gadget")):
        if not group:
            continue
        _wait_served(cluster, f"{group}/v1", plural)
        for i in (1, 2):
            create(f"{group}/v1", plural, {"kind": kind, "metadata": {"name": f"{plural}-{i}"},
                   "spec": {"size": i}})
            cluster.request(
                "PUT", f"/apis/{group}/v1/namespaces/{ns}/{plural}/{plural}-{i}/status",
                body={**cluster.request(
                    "GET", f"/apis/{group}/v1/namespaces/{ns}/{plural}/{plural}-{i}"),
                      "status": {"ready": True, "observed": i}})
    widget = cluster.request("GET", f"/apis/{pop.crd_group}/v1/namespaces/{ns}/widgets/widgets-1")
    owned_config("widget-owned", widget)
    _wait_bound(cluster, ns, ["claim-1", "claim-2", STS_CLAIM])
    return pop


def _hpa(gv: str) -> dict[str, Any]:
    if gv.endswith("v2beta1"):
        metric = {"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}
    else:
        metric = {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 70}}}
    return {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 5, "metrics": [metric]}}


def _legacy_ingress() -> dict[str, Any]:
    return {"kind": "Ingress", "metadata": {"name": "legacy"}, "spec": {"rules": [
        {"host": "legacy.example.com", "http": {"paths": [
            {"path": "/", "backend": {"serviceName": "web", "servicePort": 80}}]}}]}}


def _ingress(name: str) -> dict[str, Any]:
    return {"kind": "Ingress", "metadata": {"name": name}, "spec": {"rules": [
        {"host": f"{name}.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def _crd(pop: Population, create: Any, gv: str, group: str, kind: str, plural: str) -> None:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    names = {"plural": plural, "singular": kind.lower(), "kind": kind}
    if gv.endswith("v1beta1"):
        spec = {"group": group, "scope": "Namespaced", "names": names, "version": "v1",
                "versions": [{"name": "v1", "served": True, "storage": True}],
                "subresources": {"status": {}}, "validation": {"openAPIV3Schema": schema}}
    else:
        spec = {"group": group, "scope": "Namespaced", "names": names, "versions": [
            {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
             "schema": {"openAPIV3Schema": schema}}]}
    create(gv, "customresourcedefinitions", {"kind": "CustomResourceDefinition",
           "metadata": {"name": f"{plural}.{group}"}, "spec": spec}, False)


def _wait_served(cluster: Cluster, gv: str, plural: str, timeout: float = 30) -> None:
    def served() -> bool:
        listed = cluster.request("GET", f"/apis/{gv}")
        return any(r["name"] == plural for r in listed.get("resources", []))

    wait_until(f"{plural} of {gv} served", served, timeout=timeout, interval=0.2,
               ignore=(ApiError,))


def _wait_bound(cluster: Cluster, ns: str, claims: list[str], timeout: float = 60) -> None:
    def bound() -> bool:
        return all(_claim_phase(cluster, ns, c) == "Bound" for c in claims)

    wait_until(f"claims {claims} bound", bound, timeout=timeout)


def _claim_phase(cluster: Cluster, ns: str, claim: str) -> str | None:
    """The claim's phase; None while it does not exist (a StatefulSet makes its own)."""
    try:
        found = cluster.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return found.get("status", {}).get("phase")

"""Where a converted object is stored: its (group, version, resource) from its apiVersion/kind.

A conversion may move an object to another group (extensions Ingress → networking.k8s.io),
so the runner must find the plural resource name of the new kind. The target's discovery is
asked first (it knows every kind it serves, custom ones included); without a target cluster
(``--target-version``) the built-in table of Kubernetes' own kinds answers.
"""
from __future__ import annotations

from dataclasses import dataclass

from migrator.kube.discovery import Discovery

# (group, kind) → (plural, namespaced) for the kinds Kubernetes serves itself.
BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "ConfigMap"): ("configmaps", True),
    ("", "Endpoints"): ("endpoints", True),
    ("", "Event"): ("events", True),
    ("", "LimitRange"): ("limitranges", True),
    ("", "Namespace"): ("namespaces", False),
    ("", "Node"): ("nodes", False),
    ("", "PersistentVolume"): ("persistentvolumes", False),
    ("", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("", "Pod"): ("pods", True),
    ("", "PodTemplate"): ("podtemplates", True),
    ("", "ReplicationController"): ("replicationcontrollers", True),
    ("", "ResourceQuota"): ("resourcequotas", True),
    ("", "Secret"): ("secrets", True),
    ("", "Service"): ("services", True),
    ("", "ServiceAccount"): ("serviceaccounts", True),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"):
        ("mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"):
        ("validatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        ("validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        ("validatingadmissionpolicybindings", False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("apiregistration.k8s.io", "APIService"): ("apiservices", False),
    ("apps", "ControllerRevision"): ("controllerrevisions", True),
    ("apps", "DaemonSet"): ("daemonsets", True),
    ("apps", "Deployment"): ("deployments", True),
    ("apps", "ReplicaSet"): ("replicasets", True),
    ("apps", "StatefulSet"): ("statefulsets", True),
    ("autoscaling", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("batch", "CronJob"): ("cronjobs", True),
    ("batch", "Job"): ("jobs", True),
    ("certificates.k8s.io", "CertificateSigningRequest"): ("certificatesigningrequests", False),
    ("coordination.k8s.io", "Lease"): ("leases", True),
    ("discovery.k8s.io", "EndpointSlice"): ("endpointslices", True),
    ("events.k8s.io", "Event"): ("events", True),
    ("extensions", "DaemonSet"): ("daemonsets", True),
    ("extensions", "Deployment"): ("deployments", True),
    ("extensions", "Ingress"): ("ingresses", True),
    ("extensions", "NetworkPolicy"): ("networkpolicies", True),
    ("extensions", "PodSecurityPolicy"): ("podsecuritypolicies", False),
    ("extensions", "ReplicaSet"): ("replicasets", True),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): ("flowschemas", False),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"):
        ("prioritylevelconfigurations", False),
    ("networking.k8s.io", "Ingress"): ("ingresses", True),
    ("networking.k8s.io", "IngressClass"): ("ingressclasses", False),
    ("networking.k8s.io", "NetworkPolicy"): ("networkpolicies", True),
    ("node.k8s.io", "RuntimeClass"): ("runtimeclasses", False),
    ("policy", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("policy", "PodSecurityPolicy"): ("podsecuritypolicies", False),
    ("rbac.authorization.k8s.io", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("rolebindings", True),
    ("scheduling.k8s.io", "PriorityClass"): ("priorityclasses", False),
    ("storage.k8s.io", "CSIDriver"): ("csidrivers", False),
    ("storage.k8s.io", "CSINode"): ("csinodes", False),
    ("storage.k8s.io", "CSIStorageCapacity"): ("csistoragecapacities", True),
    ("storage.k8s.io", "StorageClass"): ("storageclasses", False),
    ("storage.k8s.io", "VolumeAttachment"): ("volumeattachments", False),
}


@dataclass(frozen=True)
class Placement:
    """Where an object goes in a snapshot."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.group, self.version, self.resource


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → (``apps``, ``v1``); ``v1`` → (``""``, ``v1``)."""
    group, _slash, version = api_version.rpartition("/")
    return group, version


class Resolver:
    """Finds the resource of an apiVersion/kind: target discovery, then the built-in table."""

    def __init__(self, discovery: Discovery | None = None) -> None:
        self._discovery = discovery
        self._cache: dict[tuple[str, str], Placement | None] = {}

    def placement(self, api_version: str, kind: str) -> Placement | None:
        """The placement of ``kind`` in ``api_version``, or None if nothing knows it."""
        key = (api_version, kind)
        if key not in self._cache:
            self._cache[key] = self._lookup(api_version, kind)
        return self._cache[key]

    def _lookup(self, api_version: str, kind: str) -> Placement | None:
        group, version = split_api_version(api_version)
        if self._discovery is not None:
            for resource in self._discovery.resources(api_version):
                if resource.kind == kind:
                    return Placement(group, version, resource.name, kind, resource.namespaced)
        known = BUILTIN.get((group, kind))
        if known is None:
            return None
        return Placement(group, version, known[0], kind, known[1])

"""The plural resource and scope of every kind Kubernetes serves itself.

A conversion may move an object to another group (extensions Ingress → networking.k8s.io),
and a snapshot records objects by resource: the plural of a kind must be known without a
cluster to ask (``--target-version``). A live cluster's discovery knows more (custom kinds
included) and is asked first where there is one.
"""

from __future__ import annotations

# (group, kind) → (plural, namespaced) for the kinds Kubernetes serves itself.
BUILTIN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
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
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        "mutatingwebhookconfigurations",
        False,
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        "validatingwebhookconfigurations",
        False,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        "validatingadmissionpolicies",
        False,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        "validatingadmissionpolicybindings",
        False,
    ),
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
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): (
        "prioritylevelconfigurations",
        False,
    ),
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


def builtin_placement(group: str, kind: str) -> tuple[str, bool] | None:
    """(plural, namespaced) of a built-in (group, kind), or None if Kubernetes has no such kind."""
    return BUILTIN_KINDS.get((group, kind))

"""Group/versions that Kubernetes stopped serving, and the release that stopped.

Data, not logic: export uses it to pick the version to read, transform to know what it must
convert, reports to warn. Each value is the (major, minor) release whose API servers no longer
serve the group/version at all (a group/version disappears when its last resource does, which
can be later than most of its kinds: storage.k8s.io/v1beta1 lost StorageClass in 1.22 but kept
CSIStorageCapacity until 1.27). Source: the Kubernetes deprecated API migration guide.
"""

from __future__ import annotations

Release = tuple[int, int]

REMOVED_IN: dict[str, Release] = {
    # 1.16: Deployments, DaemonSets, ReplicaSets, StatefulSets only in apps/v1 from here on.
    "apps/v1beta1": (1, 16),
    "apps/v1beta2": (1, 16),
    # 1.22: the big clean-up of the v1beta1 APIs that went GA in 1.16-1.19.
    "extensions/v1beta1": (1, 22),  # Ingress (its last kind) → networking.k8s.io/v1
    "networking.k8s.io/v1beta1": (1, 22),  # Ingress, IngressClass → networking.k8s.io/v1
    "apiextensions.k8s.io/v1beta1": (1, 22),  # CustomResourceDefinition → v1
    "apiregistration.k8s.io/v1beta1": (1, 22),  # APIService → v1
    "admissionregistration.k8s.io/v1beta1": (1, 22),  # webhook configurations → v1
    "authentication.k8s.io/v1beta1": (1, 22),  # TokenReview → v1
    "authorization.k8s.io/v1beta1": (1, 22),  # SubjectAccessReview and friends → v1
    "certificates.k8s.io/v1beta1": (1, 22),  # CertificateSigningRequest → v1
    "coordination.k8s.io/v1beta1": (1, 22),  # Lease → v1
    "rbac.authorization.k8s.io/v1beta1": (1, 22),  # Roles and bindings → v1
    "scheduling.k8s.io/v1beta1": (1, 22),  # PriorityClass → v1
    # 1.23: the alpha RuntimeClass (fields nested under spec) left with the 1.22 servers.
    "node.k8s.io/v1alpha1": (1, 23),  # RuntimeClass → v1
    # 1.25
    "batch/v1beta1": (1, 25),  # CronJob → batch/v1
    "discovery.k8s.io/v1beta1": (1, 25),  # EndpointSlice → v1
    "events.k8s.io/v1beta1": (1, 25),  # Event → events.k8s.io/v1
    "policy/v1beta1": (1, 25),  # PodDisruptionBudget → policy/v1; PodSecurityPolicy gone
    "autoscaling/v2beta1": (1, 25),  # HorizontalPodAutoscaler → autoscaling/v2
    "node.k8s.io/v1beta1": (1, 25),  # RuntimeClass → v1
    # 1.26
    "autoscaling/v2beta2": (1, 26),  # HorizontalPodAutoscaler → autoscaling/v2
    "flowcontrol.apiserver.k8s.io/v1beta1": (1, 26),  # FlowSchema, PriorityLevelConfiguration
    # 1.27
    "storage.k8s.io/v1beta1": (1, 27),  # CSIStorageCapacity (its last kind) → v1
    # 1.29, 1.32: flow control moved on to v1beta3, then v1.
    "flowcontrol.apiserver.k8s.io/v1beta2": (1, 29),
    "flowcontrol.apiserver.k8s.io/v1beta3": (1, 32),
}


# Kinds that left a group/version earlier than the group/version itself. A kind not listed
# here is removed when its group/version is (``REMOVED_IN``).
KIND_REMOVED_IN: dict[tuple[str, str], Release] = {
    # extensions/v1beta1 kept Ingress until 1.22; everything else went in 1.16.
    ("extensions/v1beta1", "DaemonSet"): (1, 16),
    ("extensions/v1beta1", "Deployment"): (1, 16),
    ("extensions/v1beta1", "ReplicaSet"): (1, 16),
    ("extensions/v1beta1", "NetworkPolicy"): (1, 16),
    ("extensions/v1beta1", "PodSecurityPolicy"): (1, 16),
    # storage.k8s.io/v1beta1 kept CSIStorageCapacity until 1.27; the rest went in 1.22.
    ("storage.k8s.io/v1beta1", "StorageClass"): (1, 22),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"): (1, 22),
    ("storage.k8s.io/v1beta1", "CSIDriver"): (1, 22),
    ("storage.k8s.io/v1beta1", "CSINode"): (1, 22),
}

# The release that first served each replacement group/version (or kind, where a kind came
# later than its group/version): with ``--target-version`` this says which replacements the
# target serves, so a conversion chain stops at the newest version the target knows.
ADDED_IN: dict[str, Release] = {
    "apps/v1": (1, 9),
    "networking.k8s.io/v1": (1, 8),
    "apiextensions.k8s.io/v1": (1, 16),
    "admissionregistration.k8s.io/v1": (1, 16),
    "apiregistration.k8s.io/v1": (1, 10),
    "rbac.authorization.k8s.io/v1": (1, 8),
    "storage.k8s.io/v1": (1, 6),
    "scheduling.k8s.io/v1": (1, 14),
    "coordination.k8s.io/v1": (1, 14),
    "node.k8s.io/v1": (1, 20),
    "certificates.k8s.io/v1": (1, 19),
    "events.k8s.io/v1": (1, 19),
    "discovery.k8s.io/v1": (1, 21),
    "policy/v1": (1, 21),
    "batch/v1": (1, 2),
    "autoscaling/v2beta2": (1, 12),
    "autoscaling/v2": (1, 23),
    "flowcontrol.apiserver.k8s.io/v1beta2": (1, 23),
    "flowcontrol.apiserver.k8s.io/v1beta3": (1, 26),
    "flowcontrol.apiserver.k8s.io/v1": (1, 29),
}

KIND_ADDED_IN: dict[tuple[str, str], Release] = {
    ("networking.k8s.io/v1", "Ingress"): (1, 19),
    ("networking.k8s.io/v1", "IngressClass"): (1, 19),
    ("batch/v1", "CronJob"): (1, 21),
    ("storage.k8s.io/v1", "VolumeAttachment"): (1, 13),
    ("storage.k8s.io/v1", "CSINode"): (1, 17),
    ("storage.k8s.io/v1", "CSIDriver"): (1, 18),
    ("storage.k8s.io/v1", "CSIStorageCapacity"): (1, 24),
}


def kind_removed_in(api_version: str, kind: str) -> Release | None:
    """The release that stopped serving ``kind`` at ``api_version``, or None."""
    return KIND_REMOVED_IN.get((api_version, kind)) or REMOVED_IN.get(api_version)


def kind_added_in(api_version: str, kind: str) -> Release | None:
    """The release that first served ``kind`` at ``api_version``, or None when unknown."""
    return KIND_ADDED_IN.get((api_version, kind)) or ADDED_IN.get(api_version)


def removed_in(group_version: str) -> Release | None:
    """The release that stopped serving ``group_version``, or None if it is not removed."""
    return REMOVED_IN.get(group_version)


def is_removed_by(group_version: str, release: Release) -> bool:
    """True if a server of ``release`` no longer serves ``group_version``."""
    removal = REMOVED_IN.get(group_version)
    return removal is not None and release >= removal


def format_release(release: Release) -> str:
    """Render (1, 22) as "1.22"."""
    return f"{release[0]}.{release[1]}"

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

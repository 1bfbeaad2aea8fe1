"""Which objects are the same objects: resource identities, API groups, and names.

Discovery lists some objects under several group/versions: a Deployment created through
``extensions/v1beta1`` is the same object (same uid) as the one ``apps/v1`` returns. Every
served (group, plural) maps to the identity it belongs to (:data:`ALIASES`), so that rules,
the import order and reports hold whichever group/version objects were read through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Identity = tuple[str, str]  # (group, plural); the core group is ""

# (group, plural) served under a legacy group → the (group, plural) of the identity it
# belongs to. The key's objects are the value's objects seen through an older API.
ALIASES: dict[Identity, Identity] = {
    # extensions/v1beta1 served these until 1.16 (workloads) and 1.22 (ingresses).
    ("extensions", "deployments"): ("apps", "deployments"),
    ("extensions", "daemonsets"): ("apps", "daemonsets"),
    ("extensions", "replicasets"): ("apps", "replicasets"),
    ("extensions", "networkpolicies"): ("networking.k8s.io", "networkpolicies"),
    ("extensions", "ingresses"): ("networking.k8s.io", "ingresses"),
    ("extensions", "podsecuritypolicies"): ("policy", "podsecuritypolicies"),
    # Events are stored once and served by both the core group and events.k8s.io.
    ("events.k8s.io", "events"): ("", "events"),
}

# API groups Kubernetes itself serves; every other group's objects are custom resources
# (CRDs) or aggregated APIs.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "extensions",
        "events.k8s.io",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "node.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "admissionregistration.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "certificates.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "internal.apiserver.k8s.io",
        "resource.k8s.io",
        "storagemigration.k8s.io",
    }
)

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_STABILITY = {"alpha": 0, "beta": 1, None: 2}


def identity_of(group: str, resource: str) -> Identity:
    """The (group, plural) identity whose objects ``group``'s ``resource`` serves."""
    return ALIASES.get((group, resource), (group, resource))


def is_custom(group: str) -> bool:
    """True for the objects of a group Kubernetes itself does not serve (CRDs, aggregated)."""
    return group not in BUILTIN_GROUPS


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → (``apps``, ``v1``); ``v1`` → (``""``, ``v1``)."""
    group, _slash, version = api_version.rpartition("/")
    return group, version


def join_api_version(group: str, version: str) -> str:
    """(``apps``, ``v1``) → ``apps/v1``; (``""``, ``v1``) → ``v1``."""
    return f"{group}/{version}" if group else version


def group_of(api_version: str) -> str:
    """The group of an apiVersion: ``apps/v1`` → ``apps``, ``v1`` → ``""``."""
    return api_version.rpartition("/")[0]


def type_key(group: str, resource: str) -> str:
    """The kubectl name of a type: ``deployments.apps``, ``configmaps`` for core."""
    return f"{resource}.{group}" if group else resource


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key for "newest": v2 > v2beta2 > v2beta1 > v1 > v1beta1 > v1alpha1; odd names last."""
    match = _VERSION.match(version)
    if not match:
        return (-1, -1, -1)
    major, stability, minor = match.groups()
    return (int(major), _STABILITY[stability], int(minor or 0))


def names_of(
    group: str, version: str, resource: str, kind: str, short_names: Iterable[str] = ()
) -> set[str]:
    """Every name a user may call a resource type by, as kubectl does, lower-cased:
    ``deployments``, ``deployment``, ``deploy``, ``deployments.apps``, ``deployments.v1.apps``."""
    plain = {resource.lower(), kind.lower(), *(s.lower() for s in short_names)}
    names = set(plain)
    if group:
        names |= {f"{name}.{group}" for name in plain}
        names |= {f"{name}.{version}.{group}" for name in plain}
    return names

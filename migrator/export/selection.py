"""Which resource types to export, and at which group/version: one resource per object identity.

Discovery lists some objects under several group/versions: a Deployment created through
``extensions/v1beta1`` is the same object (same uid) as the one ``apps/v1`` returns. Listing
both would export it twice, so every served (group, plural) is first mapped to the identity
it belongs to (:data:`ALIASES`), then one group/version is chosen per identity:

- with a target cluster's discovery: the newest version both clusters serve, so the old API
  server converts the objects for us;
- otherwise (or when no version is common, e.g. a CRD the target does not have yet): the
  source's preferred version of the identity's own group, else its newest;
- HorizontalPodAutoscalers are never read through ``autoscaling/v1``, which folds the
  metrics into an annotation: the newest ``v2*`` the source serves is taken instead.

Only resources that can be listed and fetched (verbs ``list`` and ``get``) are candidates;
subresources never are. Everything here is pure: functions of discovery data and filters.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from migrator.errors import ConfigError
from migrator.kube.discovery import APIResource, Discovery, group_version_path

# (group, plural) served under a legacy group → the (group, plural) of the identity it
# belongs to. The key's objects are the value's objects seen through an older API.
ALIASES: dict[tuple[str, str], tuple[str, str]] = {
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

# Group/versions never used to read a resource while a better one is served, and why.
AVOID: dict[tuple[str, str], str] = {
    ("autoscaling/v1", "horizontalpodautoscalers"): (
        "autoscaling/v1 hides the metrics in an annotation; read through autoscaling/v2*"
    ),
}

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_STABILITY = {"alpha": 0, "beta": 1, None: 2}


@dataclass(frozen=True)
class ResourceType:
    """One resource type to export: where to read it and what else serves the same objects."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    aliases: tuple[str, ...] = ()  # the other "<group>/<version>" that serve the same objects

    @property
    def group_version(self) -> str:
        """``apps/v1``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The kubectl name of the type: ``deployments.apps``, ``configmaps`` for core."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def list_path(self, namespace: str | None = None) -> str:
        """The list URL: cluster-wide, or inside ``namespace`` for a namespaced type."""
        base = group_version_path(self.group_version)
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.resource}"
        return f"{base}/{self.resource}"


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key for "newest": v2 > v2beta2 > v2beta1 > v1 > v1beta1 > v1alpha1; odd names last."""
    match = _VERSION.match(version)
    if not match:
        return (-1, -1, -1)
    major, stability, minor = match.groups()
    return (int(major), _STABILITY[stability], int(minor or 0))


def identity_of(group: str, resource: str) -> tuple[str, str]:
    """The (group, plural) identity whose objects ``group``'s ``resource`` serves."""
    return ALIASES.get((group, resource), (group, resource))


def listable(resources: Iterable[APIResource]) -> list[APIResource]:
    """Top-level resources that can be listed and read one by one."""
    return [
        r
        for r in resources
        if not r.is_subresource and "list" in r.verbs and "get" in r.verbs
    ]


def select(
    source: Discovery,
    target: Discovery | None = None,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cluster_scoped: bool = True,
) -> list[ResourceType]:
    """The resource types to export, one per identity, sorted by key.

    ``include``/``exclude`` name resources as kubectl does (``deployments``,
    ``deployments.apps``, ``deploy``, ``Deployment``, ``ingresses.extensions``); a name that
    matches nothing the source serves is a :class:`ConfigError`, so a typo never exports
    nothing silently. ``cluster_scoped`` False drops every cluster-scoped type.
    """
    candidates: dict[tuple[str, str], list[APIResource]] = {}
    for resource in listable(source.iter_resources()):
        candidates.setdefault(identity_of(resource.group, resource.name), []).append(resource)
    _check_names(include, candidates)
    _check_names(exclude, candidates)
    chosen = []
    for ident, served in candidates.items():
        if include and not any(_matches(name, served) for name in include):
            continue
        if any(_matches(name, served) for name in exclude):
            continue
        pick = choose_version(ident, served, source, target)
        if not cluster_scoped and not pick.namespaced:
            continue
        aliases = sorted({r.group_version for r in served} - {pick.group_version})
        chosen.append(
            ResourceType(
                group=pick.group,
                version=pick.version,
                resource=pick.name,
                kind=pick.kind,
                namespaced=pick.namespaced,
                aliases=tuple(aliases),
            )
        )
    return sorted(chosen, key=lambda t: t.key)


def choose_version(
    ident: tuple[str, str],
    served: Sequence[APIResource],
    source: Discovery,
    target: Discovery | None,
) -> APIResource:
    """The one of ``served`` (the identity's resources in every group/version) to read from."""
    usable = [r for r in served if (r.group_version, r.name) not in AVOID] or list(served)
    newest_first = sorted(usable, key=lambda r: (r.group == ident[0], version_key(r.version)))[
        ::-1
    ]
    if target is not None:
        for resource in newest_first:
            if any(t.name == resource.name for t in listable(target.resources(resource.group_version))):
                return resource
    preferred = source.preferred_version(ident[0])
    for resource in usable:
        if resource.group_version == preferred:
            return resource
    return newest_first[0]


def _names(resource: APIResource) -> set[str]:
    """Every name a user may call ``resource`` by, lower-cased."""
    plain = {resource.name, resource.kind.lower(), *(s.lower() for s in resource.short_names)}
    names = set(plain)
    if resource.group:
        names |= {f"{name}.{resource.group}" for name in plain}
        names |= {f"{name}.{resource.version}.{resource.group}" for name in plain}
    return names


def _matches(name: str, served: Sequence[APIResource]) -> bool:
    wanted = name.lower()
    return any(wanted in _names(resource) for resource in served)


def _check_names(names: Sequence[str], candidates: dict[tuple[str, str], list[APIResource]]) -> None:
    unknown = [n for n in names if not any(_matches(n, s) for s in candidates.values())]
    if unknown:
        raise ConfigError(
            f"no resource the source serves is called {', '.join(map(repr, unknown))}",
            hint="name resources as kubectl does: plural, plural.group, kind or short name "
            "(see `kubectl api-resources`)",
        )

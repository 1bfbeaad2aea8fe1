"""Which resource types to export, and at which group/version: one resource per object identity.

Discovery lists some objects under several group/versions: a Deployment created through
``extensions/v1beta1`` is the same object (same uid) as the one ``apps/v1`` returns. Listing
both would export it twice, so every served (group, plural) is first mapped to the identity
it belongs to (:func:`~migrator.resources.identity.identity_of`), then one group/version is
chosen per identity:

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

from collections.abc import Iterable, Mapping, Sequence

from migrator.kube.discovery import APIResource, Discovery, listable
from migrator.resources.identity import identity_of, version_key
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType

# Group/versions never used to read a resource while a better one is served, and why.
AVOID: dict[tuple[str, str], str] = {
    ("autoscaling/v1", "horizontalpodautoscalers"): (
        "autoscaling/v1 hides the metrics in an annotation; read through autoscaling/v2*"
    ),
}


def select(
    source: Discovery,
    target: Discovery | None = None,
    scope: Scope | None = None,
    storage_versions: Mapping[tuple[str, str], str] | None = None,
) -> list[ResourceType]:
    """The resource types to export, one per identity, sorted by key.

    The scope's resource filters name resources as kubectl does (``deployments``,
    ``deployments.apps``, ``deploy``, ``Deployment``, ``ingresses.extensions``); a name that
    matches nothing the source serves is a :class:`~migrator.errors.ConfigError`, so a typo
    never exports nothing silently. A scope that does not take cluster-scoped types drops
    them all, except Namespace itself when namespaces are included by name (their Namespace
    objects are exported). ``storage_versions`` maps the identities that must be read at
    their storage version (custom resources whose CRD converts through a webhook) to it.
    """
    scope = scope or Scope()
    candidates: dict[tuple[str, str], list[APIResource]] = {}
    for resource in listable(source.iter_resources()):
        candidates.setdefault(identity_of(resource.group, resource.name), []).append(resource)
    names = {ident: _names(served) for ident, served in candidates.items()}
    scope.check_resources(names.values(), "the source serves")
    chosen = []
    for ident, served in candidates.items():
        if not scope.wants_type(names[ident]):
            continue
        pick = choose_version(ident, served, source, target, (storage_versions or {}).get(ident))
        if not pick.namespaced and not _cluster_scoped_wanted(scope, ident):
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
    storage_version: str | None = None,
) -> APIResource:
    """The one of ``served`` (the identity's resources in every group/version) to read from:
    ``storage_version`` when given and served, so the API server converts nothing."""
    stored = [r for r in served if r.version == storage_version and r.group == ident[0]]
    if stored:
        return stored[0]
    usable = [r for r in served if (r.group_version, r.name) not in AVOID] or list(served)
    newest_first = sorted(usable, key=lambda r: (r.group == ident[0], version_key(r.version)))[::-1]
    if target is not None:
        for resource in newest_first:
            if any(
                t.name == resource.name for t in listable(target.resources(resource.group_version))
            ):
                return resource
    preferred = source.preferred_version(ident[0])
    for resource in usable:
        if resource.group_version == preferred:
            return resource
    return newest_first[0]


def _names(served: Iterable[APIResource]) -> set[str]:
    """Every name a user may call an identity by, through any group/version serving it."""
    return set().union(
        *(
            ResourceType(r.group, r.version, r.name, r.kind, r.namespaced).names(r.short_names)
            for r in served
        )
    )


def _cluster_scoped_wanted(scope: Scope, ident: tuple[str, str]) -> bool:
    """Whether a cluster-scoped type is exported: all of them when the scope takes
    cluster-scoped types; else, with namespaces included by name and nothing said, the
    Namespace objects of those namespaces."""
    if scope.takes_cluster_scoped:
        return True
    return scope.cluster_scoped is None and ident == ("", "namespaces")

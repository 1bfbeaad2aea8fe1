"""Which objects a run covers: namespaces, resource types, and cluster-scoped types.

One scope for every stage. Export turns it into list requests: namespace by namespace when
namespaces are included by name, cluster-wide with a server-side field selector for the
exclusions otherwise (the API server filters, so excluded objects are never transferred nor
parsed). Import and verify apply it to a snapshot's entries and objects.

``kube-system``, ``kube-public`` and ``kube-node-lease`` belong to the cluster itself: export
leaves them out unless asked (``include_system_namespaces``, or naming them in the
includes); a scope that does not say so keeps them, since a snapshot only holds them when
its export was asked to. With namespaces included by name, cluster-scoped types are left
out (unless ``cluster_scoped``), except what belongs to those namespaces: their Namespace
objects and the PersistentVolumes claimed from them (a claim without its volume would not
bind).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ConfigError
from migrator.resources.identity import names_of
from migrator.resources.objects import dig, meta
from migrator.resources.regenerated import OUT_OF_SCOPE, SYSTEM_NAMESPACE, Rule
from migrator.snapshot.layout import ResourceEntry

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-node-lease", "kube-public", "kube-system")
NAMESPACES = ("", "namespaces")
PERSISTENT_VOLUMES = ("", "persistentvolumes")

_RESOURCE_HINT = (
    "name resources as kubectl does: plural, plural.group, kind or short name "
    "(see `kubectl api-resources`)"
)


@dataclass(frozen=True)
class Scope:
    """The namespaces and resource types a run covers; empty includes mean everything."""

    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    include_system_namespaces: bool = True
    include_resources: tuple[str, ...] = ()
    exclude_resources: tuple[str, ...] = ()
    cluster_scoped: bool | None = None  # None: yes, unless namespaces are included by name
    _excluded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        excluded = set(self.exclude_namespaces)
        if not self.include_system_namespaces:
            excluded |= set(SYSTEM_NAMESPACES) - set(self.include_namespaces)
        object.__setattr__(self, "_excluded", frozenset(excluded))

    @classmethod
    def build(
        cls,
        include_namespaces: Iterable[str] = (),
        exclude_namespaces: Iterable[str] = (),
        include_system_namespaces: bool = True,
        include_resources: Iterable[str] = (),
        exclude_resources: Iterable[str] = (),
        cluster_scoped: bool | None = None,
    ) -> Scope:
        """A scope with its lists de-duplicated and sorted (equal scopes compare equal)."""
        return cls(
            tuple(sorted(set(include_namespaces))),
            tuple(sorted(set(exclude_namespaces))),
            include_system_namespaces,
            tuple(sorted(set(include_resources))),
            tuple(sorted(set(exclude_resources))),
            cluster_scoped,
        )

    @classmethod
    def for_export(cls) -> Scope:
        """What an export covers unless told otherwise: everything but the system namespaces."""
        return cls(include_system_namespaces=False)

    # -- namespaces ----------------------------------------------------------------------------

    @property
    def excluded(self) -> frozenset[str]:
        """Namespaces left out: the user's exclusions and, unless included, the system ones."""
        return self._excluded

    def admits_namespace(self, namespace: str) -> bool:
        """True if objects in (or the Namespace object called) ``namespace`` are covered."""
        if self.include_namespaces and namespace not in self.include_namespaces:
            return False
        return namespace not in self._excluded

    def namespaces_to_list(self) -> list[str] | None:
        """The namespaces to list one by one, or None to list cluster-wide."""
        if not self.include_namespaces:
            return None
        return [ns for ns in self.include_namespaces if ns not in self.exclude_namespaces]

    def field_selector(self) -> str | None:
        """The field selector a cluster-wide list of a namespaced type uses, if any."""
        if self.include_namespaces or not self._excluded:
            return None
        return ",".join(f"metadata.namespace!={ns}" for ns in sorted(self._excluded))

    def skip_rule(self, namespace: str) -> Rule | None:
        """Why the Namespace object ``namespace`` is left out, or None if it is covered."""
        if self.admits_namespace(namespace):
            return None
        if namespace in SYSTEM_NAMESPACES and namespace not in self.exclude_namespaces:
            return SYSTEM_NAMESPACE
        return OUT_OF_SCOPE

    # -- resource types ------------------------------------------------------------------------

    @property
    def takes_cluster_scoped(self) -> bool:
        """Every cluster-scoped type is covered (default: unless namespaces are chosen)."""
        if self.cluster_scoped is not None:
            return self.cluster_scoped
        return not self.include_namespaces

    def wants_type(self, names: set[str]) -> bool:
        """True if a type called by any of ``names`` (see
        :func:`~migrator.resources.identity.names_of`) passes the resource filters."""
        if self.include_resources and not any(n.lower() in names for n in self.include_resources):
            return False
        return not any(n.lower() in names for n in self.exclude_resources)

    def check_resources(self, known: Iterable[set[str]], where: str) -> None:
        """:class:`ConfigError` if a resource named in the filters matches none of the types
        ``known`` (their names), so a typo never selects nothing silently; ``where`` says
        what was searched ("the source serves", "the snapshot holds")."""
        every = set().union(*known)
        unknown = [
            n for n in (*self.include_resources, *self.exclude_resources) if n.lower() not in every
        ]
        if unknown:
            raise ConfigError(
                f"no resource {where} is called {', '.join(map(repr, unknown))}",
                hint=_RESOURCE_HINT,
            )

    def admits_entry(self, entry: ResourceEntry) -> bool:
        """True if objects of a snapshot entry's type may be covered at all."""
        if not self.wants_type(entry_names(entry)):
            return False
        if entry["namespaced"] or self.takes_cluster_scoped:
            return True
        return (entry["group"], entry["resource"]) in (NAMESPACES, PERSISTENT_VOLUMES)

    def admits(self, entry: ResourceEntry, obj: Mapping[str, Any]) -> bool:
        """True if ``obj``, an object of ``entry``, is covered."""
        if entry["namespaced"]:
            return self.admits_namespace(str(meta(obj).get("namespace") or ""))
        ident = (entry["group"], entry["resource"])
        if ident == NAMESPACES:
            return self.admits_namespace(str(meta(obj).get("name") or ""))
        if self.takes_cluster_scoped:
            return True
        if ident == PERSISTENT_VOLUMES:
            claimed_from = dig(obj, "spec", "claimRef", "namespace")
            return bool(claimed_from) and self.admits_namespace(str(claimed_from))
        return False

    def to_dict(self) -> dict[str, Any]:
        """The scope as report data (and as a setting a resumed run must share)."""
        return {
            "includeNamespaces": list(self.include_namespaces),
            "excludeNamespaces": sorted(self._excluded),
            "includeSystemNamespaces": self.include_system_namespaces,
            "includeResources": list(self.include_resources),
            "excludeResources": list(self.exclude_resources),
            "clusterScoped": self.takes_cluster_scoped,
        }


def entry_names(entry: ResourceEntry) -> set[str]:
    """Every name a user may call a snapshot entry's type by (kubectl style)."""
    return names_of(entry["group"], entry["version"], entry["resource"], entry["kind"])

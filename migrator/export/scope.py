"""Which namespaces an export covers, turned into list requests.

Listing namespace by namespace when the user names the namespaces to include, and cluster-wide
with a server-side field selector for the exclusions otherwise: the API server filters, so
excluded objects are never transferred nor parsed. ``kube-system``, ``kube-public`` and
``kube-node-lease`` belong to the cluster itself and are excluded unless asked for (or named
in the includes).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from migrator.export.rules import OUT_OF_SCOPE, SYSTEM_NAMESPACE, Rule

SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-node-lease", "kube-public", "kube-system")


@dataclass(frozen=True)
class NamespaceScope:
    """The namespaces to include (empty: all) and to exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_system: bool = False
    _excluded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        excluded = set(self.exclude)
        if not self.include_system:
            excluded |= set(SYSTEM_NAMESPACES) - set(self.include)
        object.__setattr__(self, "_excluded", frozenset(excluded))

    @classmethod
    def build(
        cls, include: Iterable[str] = (), exclude: Iterable[str] = (), include_system: bool = False
    ) -> NamespaceScope:
        """A scope with its namespace lists de-duplicated and sorted."""
        return cls(tuple(sorted(set(include))), tuple(sorted(set(exclude))), include_system)

    @property
    def excluded(self) -> frozenset[str]:
        """Namespaces left out: the user's exclusions and, unless included, the system ones."""
        return self._excluded

    def namespaces_to_list(self) -> list[str] | None:
        """The namespaces to list one by one, or None to list cluster-wide."""
        if not self.include:
            return None
        return [ns for ns in self.include if ns not in self.exclude]

    def field_selector(self) -> str | None:
        """The field selector a cluster-wide list of a namespaced type uses, if any."""
        if self.include or not self._excluded:
            return None
        return ",".join(f"metadata.namespace!={ns}" for ns in sorted(self._excluded))

    def admits(self, namespace: str) -> bool:
        """True if objects in (or the Namespace object called) ``namespace`` are exported."""
        if self.include and namespace not in self.include:
            return False
        return namespace not in self._excluded

    def skip_rule(self, namespace: str) -> Rule | None:
        """Why the Namespace object ``namespace`` is left out, or None if it is exported."""
        if self.admits(namespace):
            return None
        if namespace in SYSTEM_NAMESPACES and namespace not in self.exclude:
            return SYSTEM_NAMESPACE
        return OUT_OF_SCOPE

    def to_dict(self) -> dict[str, object]:
        """The scope as report data."""
        return {
            "include": list(self.include),
            "exclude": sorted(self._excluded),
            "includeSystem": self.include_system,
        }

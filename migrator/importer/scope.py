"""Which objects of a snapshot an import (or verify) covers: namespace and resource filters.

Pure functions of the snapshot's entries and objects. With ``--include-namespace`` the
cluster-scoped types are left out, as in export, except what belongs to those namespaces:
their Namespace objects and the PersistentVolumes claimed from them (a claim without its
volume would not bind). ``--cluster-scoped`` brings every cluster-scoped type back.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migrator.errors import ConfigError
from migrator.snapshot import ResourceEntry


def _resource_names(entry: ResourceEntry) -> set[str]:
    """Every name a user may call the entry's type by (kubectl style), lower-cased."""
    plain = {entry["resource"], entry["kind"].lower()}
    group, version = entry["group"], entry["version"]
    names = set(plain)
    if group:
        names |= {f"{name}.{group}" for name in plain}
        names |= {f"{name}.{version}.{group}" for name in plain}
    return names


@dataclass(frozen=True)
class ImportScope:
    """The namespaces and resource types to import; empty includes mean everything."""

    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    include_resources: tuple[str, ...] = ()
    cluster_scoped: bool | None = None

    @property
    def takes_cluster_scoped(self) -> bool:
        """Every cluster-scoped type is imported (default: unless namespaces are chosen)."""
        if self.cluster_scoped is not None:
            return self.cluster_scoped
        return not self.include_namespaces

    def check(self, entries: Sequence[ResourceEntry]) -> None:
        """:class:`ConfigError` if an included resource name matches nothing in the snapshot."""
        known = set().union(*(_resource_names(e) for e in entries)) if entries else set()
        unknown = [n for n in self.include_resources if n.lower() not in known]
        if unknown:
            raise ConfigError(
                f"the snapshot holds no resource called {', '.join(map(repr, unknown))}",
                hint="name resources as kubectl does: plural, plural.group or kind",
            )

    def admits_entry(self, entry: ResourceEntry) -> bool:
        """True if objects of this type may be imported at all."""
        if self.include_resources:
            names = _resource_names(entry)
            if not any(n.lower() in names for n in self.include_resources):
                return False
        if entry["namespaced"] or self.takes_cluster_scoped:
            return True
        return (entry["group"], entry["resource"]) in (("", "namespaces"),
                                                       ("", "persistentvolumes"))

    def admits_namespace(self, namespace: str) -> bool:
        """True if objects in ``namespace`` (or the Namespace called so) are imported."""
        if self.include_namespaces and namespace not in self.include_namespaces:
            return False
        return namespace not in self.exclude_namespaces

    def admits(self, entry: ResourceEntry, obj: dict[str, Any]) -> bool:
        """True if ``obj``, an object of ``entry``, is imported."""
        meta = obj.get("metadata") or {}
        if entry["namespaced"]:
            return self.admits_namespace(str(meta.get("namespace") or ""))
        ident = (entry["group"], entry["resource"])
        if ident == ("", "namespaces"):
            return self.admits_namespace(str(meta.get("name") or ""))
        if self.takes_cluster_scoped:
            return True
        if ident == ("", "persistentvolumes"):
            claim = (obj.get("spec") or {}).get("claimRef") or {}
            return bool(claim.get("namespace")) and self.admits_namespace(claim["namespace"])
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "includeNamespaces": list(self.include_namespaces),
            "excludeNamespaces": list(self.exclude_namespaces),
            "includeResources": list(self.include_resources),
            "clusterScoped": self.takes_cluster_scoped,
        }

"""A resource type as the stages handle it: where its objects are read and written.

:class:`ResourceType` names one (group, version, plural) with its kind and scope, and the
other group/versions that serve the same objects (see :mod:`migrator.resources.identity`).
A snapshot entry (:class:`~migrator.snapshot.layout.ResourceEntry`) records the same fields;
:meth:`ResourceType.of_entry` goes from one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.resources.identity import Identity, identity_of, join_api_version, names_of, type_key
from migrator.resources.paths import collection_path
from migrator.snapshot.layout import ResourceEntry


@dataclass(frozen=True)
class ResourceType:
    """One resource type: where to read it and what else serves the same objects."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    aliases: tuple[str, ...] = ()  # the other "<group>/<version>" that serve the same objects

    @classmethod
    def of_entry(cls, entry: ResourceEntry) -> ResourceType:
        """The type of a snapshot entry."""
        return cls(
            entry["group"], entry["version"], entry["resource"], entry["kind"], entry["namespaced"]
        )

    @property
    def group_version(self) -> str:
        """``apps/v1``, or ``v1`` for the core group."""
        return join_api_version(self.group, self.version)

    @property
    def key(self) -> str:
        """The kubectl name of the type: ``deployments.apps``, ``configmaps`` for core."""
        return type_key(self.group, self.resource)

    @property
    def identity(self) -> Identity:
        """The identity whose objects this type serves (``extensions`` ingresses are
        ``networking.k8s.io`` ingresses)."""
        return identity_of(self.group, self.resource)

    def names(self, short_names: tuple[str, ...] = ()) -> set[str]:
        """Every name a user may call this type by (kubectl style), lower-cased."""
        return names_of(self.group, self.version, self.resource, self.kind, short_names)

    def list_path(self, namespace: str | None = None) -> str:
        """The list URL: cluster-wide, or inside ``namespace`` for a namespaced type."""
        return collection_path(
            self.group_version, self.resource, namespace if self.namespaced else None
        )

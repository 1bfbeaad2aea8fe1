"""What every check reads: the plan, the connections to both clusters, and what each
cluster serves (asked once, shared by the checks that run side by side).

Checks list objects within the plan's export scope through :meth:`Context.in_scope`: the
namespaces the export covers (one list per namespace when they are named, else one
cluster-wide list with the exclusions as a field selector) and its label selector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from migrator.export.selection import select
from migrator.kube import Cluster, Discovery, ServerVersion, discover, iter_items
from migrator.migrate.plan import Plan
from migrator.resources.objects import Obj, namespace_of
from migrator.resources.paths import collection_path
from migrator.resources.regenerated import type_skip
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType
from migrator.snapshot.layout import ResourceEntry

SOURCE, TARGET = "source", "target"


@dataclass
class Context:
    """One preflight's shared state. ``clusters`` holds the sides that answered;
    ``unreachable`` says why the others did not."""

    plan: Plan
    now: datetime
    clusters: dict[str, Cluster] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    versions: dict[str, ServerVersion] = field(default_factory=dict)
    _discoveries: dict[str, Discovery] = field(default_factory=dict, repr=False)
    _types: list[ResourceType] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _side_locks: dict[str, threading.Lock] = field(
        default_factory=lambda: {SOURCE: threading.Lock(), TARGET: threading.Lock()}, repr=False
    )

    @property
    def scope(self) -> Scope:
        return self.plan.export.scope

    @property
    def source(self) -> Cluster:
        return self.clusters[SOURCE]

    @property
    def target(self) -> Cluster:
        return self.clusters[TARGET]

    def label(self, side: str) -> str:
        """How messages name a side: ``old cluster (context old)``."""
        ref = self.plan.source if side == SOURCE else self.plan.target
        role = "old" if side == SOURCE else "new"
        return f"{role} cluster {ref.name!r}"

    def discovery(self, side: str) -> Discovery:
        """What ``side`` serves, discovered on first use (once, whichever check asks)."""
        with self._side_locks[side]:
            found = self._discoveries.get(side)
            if found is None:
                found = self._discoveries[side] = discover(self.clusters[side])
            return found

    def list_all(self, side: str, api_version: str, resource: str) -> Iterator[Obj]:
        """Every object of a type in ``side``, cluster-wide."""
        return iter_items(self.clusters[side], collection_path(api_version, resource))

    def export_types(self) -> list[ResourceType]:
        """The types the export reads (one per object identity, at the version it would
        read), less those it always leaves behind."""
        with self._lock:
            if self._types is not None:
                return self._types
        types = [
            rtype
            for rtype in select(self.discovery(SOURCE), self.discovery(TARGET), self.scope)
            if type_skip(rtype.group, rtype.resource) is None
        ]
        with self._lock:
            self._types = types
        return types

    def objects_of(self, rtype: ResourceType, *, accept: str = "application/json") -> Iterator[Obj]:
        """The source's objects of ``rtype`` that the export covers (``accept``
        :data:`~migrator.kube.pager.METADATA_LIST` for their metadata only)."""
        if rtype.namespaced:
            yield from self.in_scope(rtype.group_version, rtype.resource, accept=accept)
            return
        entry = cast(
            ResourceEntry,
            {"group": rtype.group, "resource": rtype.resource, "namespaced": False},
        )
        query = self._label_query()
        for obj in iter_items(self.source, rtype.list_path(), query=query, accept=accept):
            if self.scope.admits(entry, obj):
                yield obj

    def _label_query(self) -> dict[str, str | int | bool]:
        selector = self.plan.export.label_selector
        return {"labelSelector": selector} if selector else {}

    def in_scope(
        self, api_version: str, resource: str, *, accept: str = "application/json"
    ) -> Iterator[Obj]:
        """The source's objects of a namespaced type that the export covers."""
        query = self._label_query()
        scope = self.scope
        namespaces = scope.namespaces_to_list()
        if namespaces is not None:
            for namespace in namespaces:
                path = collection_path(api_version, resource, namespace)
                yield from iter_items(self.source, path, query=query, accept=accept)
            return
        selector = scope.field_selector()
        if selector:
            query["fieldSelector"] = selector
        path = collection_path(api_version, resource)
        for obj in iter_items(self.source, path, query=query, accept=accept):
            if scope.admits_namespace(namespace_of(obj)):
                yield obj


def ref(kind: str, obj: Any) -> str:
    """``Deployment shop/web`` or ``StorageClass fast``: how details name an object."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name") or "?"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"

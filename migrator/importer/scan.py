"""The import's plan, read from the snapshot before anything is written.

One pass over the objects in scope counts them per phase and type (for progress bars and
the report) and records every object that carries ownerReferences; a second, short pass
over only the types those references name finds which owners are imported too, and moves
their dependents to the "owned" phases. Memory holds counts, dependents and owner names,
never the objects themselves.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.importer import order
from migrator.importer.owners import OwnerIndex, object_key
from migrator.importer.scope import ImportScope
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import resource_folder


def folder_of(entry: ResourceEntry) -> str:
    """The entry's folder in the snapshot (``resources/apps/v1/deployments``): its progress key."""
    return resource_folder(entry["group"], entry["version"], entry["resource"])


def iter_part(
    reader: SnapshotReader, entry: ResourceEntry, index: int
) -> Iterator[dict[str, Any]]:
    """The objects of one part of an entry."""
    return reader.iter_objects({**entry, "parts": [entry["parts"][index]]})


@dataclass
class ImportPlan:
    """What the import will do, phase by phase."""

    entries: list[ResourceEntry]
    owners: OwnerIndex
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, folder) → n
    namespaces: set[str] = field(default_factory=set)  # namespaces objects are imported into
    out_of_scope: int = 0

    def phase_of(self, entry: ResourceEntry, obj: dict[str, Any]) -> str:
        """The phase an (in-scope) object is imported in."""
        depth = self.owners.depth(object_key(entry["group"], entry["kind"], obj))
        if depth:
            return f"{order.OWNED_PREFIX}{depth}"
        return order.tier_of(entry["group"], entry["resource"]).name

    def phases(self) -> list[str]:
        """Every phase to run, in order."""
        return order.phases(self.owners.max_depth())

    def entries_in(self, phase: str) -> list[ResourceEntry]:
        """The entries with objects in ``phase``, in the snapshot's order."""
        return [e for e in self.entries if self.counts[(phase, folder_of(e))]]

    def total(self, phase: str) -> int:
        return sum(n for (p, _folder), n in self.counts.items() if p == phase)


def plan_import(reader: SnapshotReader, scope: ImportScope) -> ImportPlan:
    """Scan the snapshot (see the module doc) into an :class:`ImportPlan`."""
    entries = [e for e in reader.resources() if scope.admits_entry(e)]
    kinds = {(e["group"], e["kind"]): e["namespaced"] for e in entries}
    plan = ImportPlan(entries=entries, owners=OwnerIndex(kinds))
    for entry in entries:
        folder = folder_of(entry)
        tier = order.tier_of(entry["group"], entry["resource"]).name
        for obj in reader.iter_objects(entry):
            if not scope.admits(entry, obj):
                plan.out_of_scope += 1
                continue
            plan.counts[(tier, folder)] += 1
            meta = obj.get("metadata") or {}
            if meta.get("namespace"):
                plan.namespaces.add(str(meta["namespace"]))
            refs = meta.get("ownerReferences")
            if refs:
                plan.owners.add_dependent(object_key(entry["group"], entry["kind"], obj), refs)
    _find_owners(reader, plan, scope)
    folders = {(e["group"], e["kind"]): e for e in entries}
    for key in plan.owners.owners_of:
        depth = plan.owners.depth(key)
        if depth:
            entry = folders[key[:2]]
            tier = order.tier_of(entry["group"], entry["resource"]).name
            plan.counts[(tier, folder_of(entry))] -= 1
            plan.counts[(f"{order.OWNED_PREFIX}{depth}", folder_of(entry))] += 1
    return plan


def _find_owners(reader: SnapshotReader, plan: ImportPlan, scope: ImportScope) -> None:
    wanted = plan.owners.owner_kinds()
    for entry in plan.entries:
        if (entry["group"], entry["kind"]) not in wanted:
            continue
        for obj in reader.iter_objects(entry):
            if scope.admits(entry, obj):
                plan.owners.add_present(object_key(entry["group"], entry["kind"], obj))


def kinds_by_folder(entries: Sequence[ResourceEntry]) -> dict[str, tuple[str, str]]:
    """Folder → (group, kind), to turn recorded outcomes back into owner keys."""
    return {folder_of(e): (e["group"], e["kind"]) for e in entries}

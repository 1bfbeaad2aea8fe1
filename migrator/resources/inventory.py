"""What a snapshot holds within a scope, phase by phase: read before anything is written.

The import plans from it (what to create, in which order) and verify checks against it
(what the target must hold). One pass over the objects in scope counts them per phase and
type (for progress bars and the reports) and records every object that carries
ownerReferences; a second, short pass over only the types those references name finds which
owners are covered too, and moves their dependents to the "owned" phases (see
:mod:`migrator.resources.order`). Memory holds counts, dependents and owner names, never the
objects themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrator.resources import order
from migrator.resources.owners import OwnerIndex, object_key
from migrator.resources.scope import Scope, entry_names
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import entry_folder


@dataclass
class Inventory:
    """The covered objects of a snapshot, phase by phase."""

    entries: list[ResourceEntry]
    owners: OwnerIndex
    counts: Counter[tuple[str, str]] = field(
        default_factory=Counter
    )  # (phase, snapshot folder) → objects
    namespaces: set[str] = field(default_factory=set)  # namespaces the covered objects are in
    out_of_scope: int = 0

    def phase_of(self, entry: ResourceEntry, obj: dict[str, Any]) -> str:
        """The phase a covered object is imported in."""
        depth = self.owners.depth(object_key(entry["group"], entry["kind"], obj))
        if depth:
            return f"{order.OWNED_PREFIX}{depth}"
        return order.tier_of(entry["group"], entry["resource"]).name

    def phases(self) -> list[str]:
        """Every phase to run, in order."""
        return order.phases(self.owners.max_depth())

    def entries_in(self, phase: str) -> list[ResourceEntry]:
        """The entries with objects in ``phase``, in the snapshot's order."""
        return [e for e in self.entries if self.counts[(phase, entry_folder(e))]]

    def total(self, phase: str) -> int:
        """Covered objects in ``phase``."""
        return sum(n for (p, _folder), n in self.counts.items() if p == phase)


def take_inventory(reader: SnapshotReader, scope: Scope) -> Inventory:
    """Scan the snapshot (see the module doc) into an :class:`Inventory`; a resource the
    scope names that the snapshot does not hold is a :class:`~migrator.errors.ConfigError`."""
    scope.check_resources([entry_names(e) for e in reader.resources()], "the snapshot holds")
    entries = [e for e in reader.resources() if scope.admits_entry(e)]
    kinds = {(e["group"], e["kind"]): e["namespaced"] for e in entries}
    inventory = Inventory(entries=entries, owners=OwnerIndex(kinds))
    for entry in entries:
        folder = entry_folder(entry)
        tier = order.tier_of(entry["group"], entry["resource"]).name
        for obj in reader.iter_objects(entry):
            if not scope.admits(entry, obj):
                inventory.out_of_scope += 1
                continue
            inventory.counts[(tier, folder)] += 1
            meta = obj.get("metadata") or {}
            if meta.get("namespace"):
                inventory.namespaces.add(str(meta["namespace"]))
            refs = meta.get("ownerReferences")
            if refs:
                inventory.owners.add_dependent(object_key(entry["group"], entry["kind"], obj), refs)
    _find_owners(reader, inventory, scope)
    folders = {(e["group"], e["kind"]): e for e in entries}
    for key in inventory.owners.owners_of:
        depth = inventory.owners.depth(key)
        if depth:
            entry = folders[key[:2]]
            tier = order.tier_of(entry["group"], entry["resource"]).name
            inventory.counts[(tier, entry_folder(entry))] -= 1
            inventory.counts[(f"{order.OWNED_PREFIX}{depth}", entry_folder(entry))] += 1
    return inventory


def _find_owners(reader: SnapshotReader, inventory: Inventory, scope: Scope) -> None:
    wanted = inventory.owners.owner_kinds()
    for entry in inventory.entries:
        if (entry["group"], entry["kind"]) not in wanted:
            continue
        for obj in reader.iter_objects(entry):
            if scope.admits(entry, obj):
                inventory.owners.add_present(object_key(entry["group"], entry["kind"], obj))

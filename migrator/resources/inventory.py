"""What a snapshot holds within a scope, phase by phase: read before anything is written.

The import plans from it (what to create, in which order) and verify checks against it
(what the target must hold). One pass over the objects in scope counts them per phase and
type (for progress bars and the reports) and records every object that carries
ownerReferences; a second, short pass over only the types those references name finds which
owners are covered too, and moves their dependents to the "owned" phases (see
:mod:`migrator.resources.order`). Memory holds counts, dependents and owner names, never the
objects themselves.

A transformed snapshot may name objects that yield to the target's own
(:data:`TARGET_WINS` in its manifest, see :func:`yields`): a StorageClass renamed by
``--storage-class old=new`` stands for the target's ``new`` when the target has one. The
import then leaves the target's object as it is, whatever the conflict policy, and verify
does not compare it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.resources import order
from migrator.resources.owners import Key, OwnerIndex, object_key
from migrator.resources.scope import Scope, entry_names
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import entry_folder

TARGET_WINS = "targetWins"  # under the manifest's "transform": objects that yield


def yields(group: str, kind: str, name: str, why: str, namespace: str = "") -> dict[str, str]:
    """One entry of :data:`TARGET_WINS`: the object (as the snapshot names it) and why the
    target's own object of that name wins."""
    return {"group": group, "kind": kind, "namespace": namespace, "name": name, "why": why}


def target_wins_of(manifest: Mapping[str, Any]) -> dict[Key, str]:
    """What a snapshot's manifest says yields to the target's own: object key → why."""
    listed = (manifest.get("transform") or {}).get(TARGET_WINS) or ()
    return {
        (str(y["group"]), str(y["kind"]), str(y.get("namespace") or ""), str(y["name"])): str(
            y.get("why") or ""
        )
        for y in listed
    }


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
    target_wins: dict[Key, str] = field(default_factory=dict)  # object key → why

    def yields_to_target(self, entry: ResourceEntry, obj: dict[str, Any]) -> str | None:
        """Why the target's own object wins over this snapshot object, or None."""
        return self.target_wins.get(object_key(entry["group"], entry["kind"], obj))

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
    inventory = Inventory(
        entries=entries, owners=OwnerIndex(kinds), target_wins=target_wins_of(reader.manifest)
    )
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

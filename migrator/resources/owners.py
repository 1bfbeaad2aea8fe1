"""Owner references across clusters: relinked to the owner's new uid, or dropped.

An ownerReference names its owner by apiVersion, kind, name and **uid**. Uids are assigned
anew by the target, so a reference copied as-is points at nothing, and the target's garbage
collector deletes an object whose owners are all gone: every reference must be rewritten or
removed before the object is created.

- The owner is imported too: the dependent is created after it (the runner's "owned" phases,
  one per level of ownership) and the reference gets the owner's new uid.
- The owner is not imported (filtered out, skipped by export, or it failed): the reference is
  dropped and the report lists it.

Owners are matched by (group, kind, namespace, name): an owner is in the dependent's namespace
or cluster-scoped. The index is built from one pass over the snapshot that keeps only the
dependents and the owners they name, never every object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.resources.identity import group_of
from migrator.resources.objects import meta

Key = tuple[str, str, str, str]  # (group, kind, namespace or "", name)
GroupKind = tuple[str, str]

MAX_DEPTH = 16  # deeper (or cyclic) ownership is cut there; the reference is then dropped


def object_key(group: str, kind: str, obj: Mapping[str, Any]) -> Key:
    """The key of one object (the identity owners are matched on)."""
    m = meta(obj)
    return (group, kind, str(m.get("namespace") or ""), str(m.get("name") or ""))


@dataclass(frozen=True)
class DroppedRef:
    """One owner reference removed at import, and why."""

    dependent: Key
    owner: Key
    reason: str

    def to_dict(self) -> dict[str, str]:
        group, kind, namespace, name = self.dependent
        o_group, o_kind, _o_ns, o_name = self.owner
        return {
            "kind": kind,
            "group": group,
            "namespace": namespace,
            "name": name,
            "ownerKind": o_kind,
            "ownerGroup": o_group,
            "ownerName": o_name,
            "reason": self.reason,
        }


@dataclass
class OwnerIndex:
    """Who owns whom among the imported objects.

    ``kinds`` maps every (group, kind) of the snapshot to whether it is namespaced; feed it
    the dependents (:meth:`add_dependent`), then the owners that exist (:meth:`add_present`
    for objects whose (group, kind) is in :meth:`owner_kinds`).
    """

    kinds: dict[GroupKind, bool]
    owners_of: dict[Key, list[Key]] = field(default_factory=dict)
    present: set[Key] = field(default_factory=set)
    _wanted: set[Key] = field(default_factory=set)
    _depths: dict[Key, int] = field(default_factory=dict)

    def owner_key(self, ref: Mapping[str, Any], namespace: str) -> Key | None:
        """The key of a reference's owner, or None if its kind is not in the snapshot.

        A legacy apiVersion (``extensions/v1beta1`` Deployment) is matched to the one group
        the snapshot holds that kind in.
        """
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        group = group_of(str(ref.get("apiVersion") or ""))
        if (group, kind) not in self.kinds:
            groups = [g for g, k in self.kinds if k == kind]
            if len(groups) != 1:
                return None
            group = groups[0]
        return (group, kind, namespace if self.kinds[(group, kind)] else "", name)

    def add_dependent(self, key: Key, refs: Iterable[Mapping[str, Any]]) -> None:
        """Record an imported object that carries ownerReferences."""
        owners = [o for o in (self.owner_key(ref, key[2]) for ref in refs) if o is not None]
        self.owners_of[key] = owners
        self._wanted.update(owners)

    def owner_kinds(self) -> set[GroupKind]:
        """The (group, kind)s worth scanning for :meth:`add_present`."""
        return {(group, kind) for group, kind, _ns, _name in self._wanted}

    def add_present(self, key: Key) -> None:
        """Record that an object which some dependent names as owner is imported."""
        if key in self._wanted:
            self.present.add(key)

    def depth(self, key: Key) -> int:
        """0 for an object with no imported owner, else 1 + its deepest imported owner's."""
        return self._depth(key, ())

    def _depth(self, key: Key, seen: tuple[Key, ...]) -> int:
        if key in self._depths:
            return self._depths[key]
        owners = [o for o in self.owners_of.get(key, ()) if o in self.present]
        if not owners or len(seen) >= MAX_DEPTH or key in seen:
            depth = 0 if not owners else MAX_DEPTH
        else:
            depth = 1 + max(self._depth(o, (*seen, key)) for o in owners)
        self._depths[key] = min(depth, MAX_DEPTH)
        return self._depths[key]

    def max_depth(self) -> int:
        """The number of owned phases the import needs."""
        return max((self.depth(k) for k in self.owners_of), default=0)


def relink(
    obj: dict[str, Any],
    key: Key,
    index: OwnerIndex,
    new_uid: Callable[[Key], str | None],
) -> tuple[int, list[DroppedRef]]:
    """Rewrite ``obj``'s ownerReferences in place for the target.

    ``new_uid`` gives the uid an owner has in the target (None if it was not created there).
    Returns how many references were relinked and the ones dropped, with the reason.
    """
    metadata = obj.get("metadata") or {}
    refs = metadata.get("ownerReferences")
    if not refs:
        return 0, []
    kept: list[dict[str, Any]] = []
    dropped: list[DroppedRef] = []
    for ref in refs:
        owner = index.owner_key(ref, key[2])
        fallback = (
            group_of(str(ref.get("apiVersion") or "")),
            str(ref.get("kind") or ""),
            key[2],
            str(ref.get("name") or ""),
        )
        if owner is None or owner not in index.present:
            dropped.append(DroppedRef(key, owner or fallback, "owner not in the import"))
            continue
        uid = new_uid(owner)
        if uid is None:
            dropped.append(DroppedRef(key, owner, "owner was not created in the target"))
            continue
        kept.append({**ref, "uid": uid})
    if kept:
        metadata["ownerReferences"] = kept
    else:
        metadata.pop("ownerReferences", None)
    return len(kept), dropped

"""What a cluster-difference rule is: which kinds it touches, and the changes it makes.

A difference rule adapts objects to the new cluster's surroundings (storage classes, image
registries, CIDRs, ...) rather than to its API versions. Each declares the (group, kind)
pairs it applies to, so the runner can skip it cheaply, and returns its changes so the
report shows every one. Rules modify the object they are given (the runner owns it).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from migrator.transform.base import Change

Obj = dict[str, Any]
GroupKind = tuple[str, str]


class DifferenceRule(Protocol):
    """One opt-in rule; ``kinds`` None means it looks at every object."""

    name: str
    kinds: frozenset[GroupKind] | None

    def apply(self, obj: Obj) -> list[Change]: ...


def applies(rule: DifferenceRule, group_kind: GroupKind) -> bool:
    """True if ``rule`` wants to see objects of ``group_kind``."""
    return rule.kinds is None or group_kind in rule.kinds


def rename(
    node: Mapping[str, Any] | None,
    key: str,
    mapping: Mapping[str, str],
    pointer: str,
    rule: str,
    reason: str,
) -> list[Change]:
    """Replace ``node[key]`` by its image in ``mapping`` if it has one; the change or nothing."""
    if not isinstance(node, dict):
        return []
    old = node.get(key)
    if not isinstance(old, str) or old not in mapping:
        return []
    node[key] = mapping[old]
    return [Change(path=pointer, action="set", reason=reason, before=old, after=mapping[old],
                   source=rule)]


def dig(obj: Any, *tokens: str) -> Any:
    """The value under ``tokens`` (keys), or None if any step is missing or not an object."""
    for token in tokens:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(token)
    return obj

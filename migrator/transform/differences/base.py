"""What a cluster-difference rule is: which kinds it touches, and the changes it makes.

A difference rule adapts objects to the new cluster's surroundings (storage classes, image
registries, CIDRs, ...) rather than to its API versions. Each declares the (group, kind)
pairs it applies to, so the runner can skip it cheaply, and returns its changes so the
report shows every one. Rules modify the object they are given (the runner owns it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from migrator.resources.objects import Obj, dig
from migrator.transform.base import Change, Severity

__all__ = [
    "DifferenceRule",
    "GroupKind",
    "Obj",
    "applies",
    "dig",
    "remove_value",
    "rename",
    "set_value",
]

GroupKind = tuple[str, str]


class DifferenceRule(Protocol):
    """One opt-in rule; ``kinds`` None means it looks at every object."""

    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> frozenset[GroupKind] | None: ...

    def apply(self, obj: Obj) -> list[Change]: ...


def applies(rule: DifferenceRule, group_kind: GroupKind) -> bool:
    """True if ``rule`` wants to see objects of ``group_kind``."""
    return rule.kinds is None or group_kind in rule.kinds


def set_value(
    holder: Any, key: Any, new: Any, pointer: str, rule: str, reason: str
) -> list[Change]:
    """Set ``holder[key]`` (a mapping key or a list index) to ``new``; the change, or nothing
    when it holds ``new`` already."""
    old = holder.get(key) if isinstance(holder, dict) else holder[key]
    if old == new:
        return []
    holder[key] = new
    return [Change(path=pointer, action="set", reason=reason, before=old, after=new, source=rule)]


def remove_value(
    holder: dict[str, Any],
    key: str,
    pointer: str,
    rule: str,
    reason: str,
    severity: Severity = Severity.INFO,
) -> list[Change]:
    """Remove ``holder[key]``; the change."""
    before = holder.pop(key)
    return [
        Change(
            path=pointer,
            action="remove",
            reason=reason,
            before=before,
            source=rule,
            severity=severity,
        )
    ]


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
    return set_value(node, key, mapping[old], pointer, rule, reason)

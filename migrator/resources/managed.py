"""Who set a field of an object: the field managers of its ``managedFields``, or ``kubectl
apply``'s last-applied annotation for objects older than field management.

A value a client sent is the user's choice; a value the API server filled in (an allocated
node port, a default) belongs to no manager. ``managedFields`` record, per manager, the fields
it set as a tree (``fieldsV1``): ``f:<name>`` for a field, ``k:<json>`` for the item of a list
keyed by some of its fields (a Service port is ``k:{"port":80,"protocol":"TCP"}``).
Field paths here are written in that vocabulary, one step per element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from migrator.resources.objects import Obj, annotations_of, meta

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

Step = str | Mapping[str, Any]  # a field name, or the key fields of a list item


def managers_of(obj: Obj, steps: Sequence[Step]) -> list[str]:
    """The managers whose ``fieldsV1`` hold the field at ``steps`` (field names, and for a
    keyed list item the mapping of its key fields, e.g. ``{"port": 80, "protocol": "TCP"}``)."""
    found = []
    for entry in meta(obj).get("managedFields") or ():
        if not isinstance(entry, dict):
            continue
        node: Any = entry.get("fieldsV1")
        for step in steps:
            node = _child(node, step)
            if node is None:
                break
        if node is not None:
            found.append(str(entry.get("manager") or "(unnamed manager)"))
    return found


def _child(node: Any, step: Step) -> Any:
    if not isinstance(node, dict):
        return None
    if isinstance(step, str):
        return node.get(f"f:{step}")
    for key, child in node.items():
        if key.startswith("k:") and _key_fields(key) == dict(step):
            return child
    return None


def _key_fields(key: str) -> dict[str, Any] | None:
    try:
        fields = json.loads(key[2:])
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def has_managed_fields(obj: Obj) -> bool:
    """True when the object carries field management (every object written since 1.18)."""
    return bool(meta(obj).get("managedFields"))


def last_applied(obj: Obj) -> Obj | None:
    """The manifest ``kubectl apply`` last sent for ``obj`` (its annotation), or None."""
    raw = annotations_of(obj).get(LAST_APPLIED)
    if not isinstance(raw, str):
        return None
    try:
        applied = json.loads(raw)
    except ValueError:
        return None
    return applied if isinstance(applied, dict) else None

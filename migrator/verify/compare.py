"""Parity, object by object: what the target should hold of a snapshot object, and how what
it holds differs. Pure functions of plain data.

Each object of the snapshot is turned into exactly what the import applies
(:func:`~migrator.resources.objects.apply_body`), the live object is cut down to the same
fields (:func:`project`), and only then compared with deepdiff. So fields the target's API
server defaults (``imagePullPolicy``, ``protocol``, ...), fields it owns (uid,
resourceVersion, managedFields, ...) and status never count as differences, while a value the
snapshot sets and the target holds otherwise always does. Owner references are compared
without their uid (it is the target's by design) and without the ones the import drops.
Secret values are masked in every difference: only the path is shown.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from deepdiff import DeepDiff

from migrator.resources.objects import apply_body, join_pointer
from migrator.resources.owners import OwnerIndex, object_key
from migrator.resources.regenerated import is_regenerated as _is_regenerated
from migrator.snapshot import ResourceEntry

MASK = "<masked>"

# Fields a controller of the target rewrites after import, whatever the snapshot said.
CONTROLLER_ANNOTATIONS: dict[str, str] = {
    "deployment.kubernetes.io/revision": "numbered by the deployment controller from its "
    "ReplicaSets, whose history starts afresh in the target",
}


def project(desired: Any, live: Any) -> Any:
    """``live`` cut down to the shape of ``desired``: keys ``desired`` lacks are dropped.

    Lists of equal length are projected element by element (so defaulted fields inside
    containers or ports do not count); lists of other lengths are returned as they are. A
    key ``desired`` sets to an empty value (``{}``, ``[]``, null) that ``live`` lacks counts
    as equal: the API server omits empty values (``metadata.annotations: {}`` is not stored).
    """
    if isinstance(desired, dict) and isinstance(live, dict):
        return {
            k: project(v, live[k]) if k in live else v
            for k, v in desired.items()
            if k in live or _empty(v)
        }
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [project(d, v) for d, v in zip(desired, live, strict=True)]
    return live


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list)) and not value)


def expected(
    obj: Mapping[str, Any], entry: ResourceEntry, owners: OwnerIndex | None = None
) -> dict[str, Any]:
    """What the target should hold of a snapshot object, in the fields the snapshot sets."""
    desired = apply_body(obj, entry)
    # Items of a list carry no apiVersion/kind: the type is checked by where they are listed.
    desired.pop("apiVersion")
    desired.pop("kind")
    meta = desired["metadata"]
    annotations = meta.get("annotations")
    if annotations:
        kept = {k: v for k, v in annotations.items() if k not in CONTROLLER_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            meta.pop("annotations")
    refs = meta.get("ownerReferences")
    if refs:
        key = object_key(entry["group"], entry["kind"], obj)
        kept_refs = [
            {k: v for k, v in ref.items() if k != "uid"}
            for ref in refs
            if owners is None or owners.owner_key(ref, key[2]) in owners.present
        ]
        if kept_refs:
            meta["ownerReferences"] = kept_refs
        else:
            meta.pop("ownerReferences")
    return desired


def differences(
    desired: Mapping[str, Any], live: Mapping[str, Any], *, secret: bool = False
) -> list[dict[str, Any]]:
    """The differences between ``desired`` and ``live`` in the fields ``desired`` sets.

    Each is ``{"path", "change", "snapshot", "target"}`` (``path`` a JSON Pointer); with
    ``secret`` (a Secret's) the values under ``data``, ``stringData`` and every annotation (the
    last-applied one holds the data of a Secret managed with ``kubectl apply``) are replaced
    by ``<masked>``.
    """
    diff = DeepDiff(dict(desired), project(dict(desired), dict(live)), verbose_level=2)
    found = []
    for change, items in diff.items():
        if not isinstance(items, Mapping):  # e.g. iterable_item_added as a PrettyOrderedSet
            items = {path: None for path in items}
        for path, detail in items.items():
            before, after = _values(change, detail)
            tokens = _tokens(path)
            if secret and _secret_path(tokens):
                before = MASK if before is not None else None
                after = MASK if after is not None else None
            found.append(
                {
                    "path": join_pointer(*tokens),
                    "change": change,
                    "snapshot": before,
                    "target": after,
                }
            )
    return sorted(found, key=lambda d: d["path"])


def _values(change: str, detail: Any) -> tuple[Any, Any]:
    if isinstance(detail, Mapping) and "old_value" in detail:
        return detail.get("old_value"), detail.get("new_value")
    if change.endswith("removed"):
        return detail, None
    if change.endswith("added"):
        return None, detail
    return None, None


def _secret_path(tokens: list[str]) -> bool:
    """True where a Secret's difference may hold its data: the data, stringData, every
    annotation, and anything that contains them."""
    if len(tokens) <= 1:
        return not tokens or tokens[0] in ("data", "stringData", "metadata")
    return tokens[0] in ("data", "stringData") or tokens[:2] == ["metadata", "annotations"]


# One step of a deepdiff path: ['key'] (quoted as repr quotes it) or [index].
_STEP = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(-?\d+))\]""")


def _tokens(path: str) -> list[str]:
    """deepdiff's ``root['metadata']['annotations']['a/b']`` as its keys and indexes."""
    tokens = []
    for step in _STEP.finditer(path[len("root") :]):
        single, double, index = step.groups()
        if single is not None:
            tokens.append(ast.literal_eval(f"'{single}'"))
        elif double is not None:
            tokens.append(ast.literal_eval(f'"{double}"'))
        else:
            tokens.append(index)
    return tokens


def is_regenerated(obj: Mapping[str, Any], entry: ResourceEntry) -> bool:
    """True for a live object the target makes itself (export would skip it too)."""
    return _is_regenerated(dict(obj), entry["group"], entry["resource"])

"""JSON Pointer (RFC 6901) and JSON Patch (RFC 6902) on plain decoded JSON.

Small and dependency-free because the rules engine, the cluster-difference rules and the
report all speak JSON Pointers, and the patch semantics must be exact: ``~1`` is ``/`` and
``~0`` is ``~`` inside a token, ``-`` appends to an array, ``test`` compares by JSON value.
Operations apply in place; callers copy first when they must keep the original.
Error messages name the path, never the values (they may be Secret data).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from migrator.errors import PatchError, PatchTestFailed
from migrator.resources.objects import escape_token, join_pointer

__all__ = [
    "OPERATIONS",
    "REQUIRED",
    "PatchError",
    "PatchTestFailed",
    "add",
    "apply_operation",
    "apply_patch",
    "escape_token",
    "exists",
    "join_pointer",
    "json_equal",
    "parse_pointer",
    "remove",
    "replace",
    "resolve",
]

OPERATIONS = ("add", "remove", "replace", "copy", "move", "test")
# Which members each operation needs besides "op" and "path".
REQUIRED: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "copy": ("from",),
    "move": ("from",),
    "test": ("value",),
}


def parse_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of a JSON Pointer; ``""`` is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON Pointer {pointer!r} must be empty or start with '/'")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _index(container: Sequence[Any], token: str, pointer: str, *, append: bool) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"{pointer}: {token!r} is not an array index")
    index = int(token)
    limit = len(container) + (1 if append else 0)
    if index >= limit:
        raise PatchError(f"{pointer}: index {index} is out of range")
    return index


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    """The container holding the pointer's target and the last token."""
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchError("the whole document cannot be the target of this operation")
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, Mapping):
        if token not in node:
            raise PatchError(f"{pointer} does not exist")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, pointer, append=False)]
    raise PatchError(f"{pointer}: cannot descend into a scalar")


def resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer``; :class:`PatchError` if it does not exist."""
    node = doc
    for token in parse_pointer(pointer):
        node = _child(node, token, pointer)
    return node


def exists(doc: Any, pointer: str) -> bool:
    """True if ``pointer`` names a value of ``doc``."""
    try:
        resolve(doc, pointer)
    except PatchError:
        return False
    return True


def add(doc: Any, pointer: str, value: Any) -> Any:
    """RFC 6902 add; returns the (possibly new) document."""
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, append=True), value)
    else:
        raise PatchError(f"{pointer}: the parent is not an object or array")
    return doc


def remove(doc: Any, pointer: str) -> Any:
    """RFC 6902 remove: the value must exist. Returns the value removed."""
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"{pointer} does not exist")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, pointer, append=False))
    raise PatchError(f"{pointer}: the parent is not an object or array")


def replace(doc: Any, pointer: str, value: Any) -> Any:
    """RFC 6902 replace: the value must exist. Returns the document."""
    if pointer == "":
        return value
    resolve(doc, pointer)
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    else:
        parent[_index(parent, token, pointer, append=False)] = value
    return doc


def apply_operation(doc: Any, operation: Mapping[str, Any]) -> Any:
    """Apply one validated operation in place and return the document (the root may change)."""
    op, path = operation["op"], operation["path"]
    if op == "add":
        return add(doc, path, copy.deepcopy(operation["value"]))
    if op == "remove":
        remove(doc, path)
        return doc
    if op == "replace":
        return replace(doc, path, copy.deepcopy(operation["value"]))
    if op == "copy":
        return add(doc, path, copy.deepcopy(resolve(doc, operation["from"])))
    if op == "move":
        source = operation["from"]
        if path.startswith(source + "/"):
            raise PatchError(f"cannot move {source} into its own child {path}")
        if source == path:
            return doc
        return add(doc, path, remove(doc, source))
    if op == "test":
        if not json_equal(resolve(doc, path), operation["value"]):
            raise PatchTestFailed(f"test failed: the value at {path or '/'} differs")
        return doc
    raise PatchError(f"unknown operation {op!r}")


def apply_patch(doc: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """Apply a whole patch to a copy of ``doc``: all operations or none (RFC 6902 atomicity)."""
    result = copy.deepcopy(doc)
    for operation in operations:
        result = apply_operation(result, operation)
    return result


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but True is not 1 and key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b

"""Kubernetes objects as plain decoded JSON: the type every stage passes around, how to reach
into one, and which of its fields only an API server sets.

Objects are the dicts the API server sends (and the snapshot stores): no wrapper classes, so
a stage streams millions of them at the cost of parsing alone. Reading nested fields always
goes through :func:`lookup`, which tolerates anything missing or of another shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from migrator.snapshot.layout import ResourceEntry, api_version

Obj = dict[str, Any]
Path = tuple[Any, ...]  # keys and list indexes, from the object's root

_MISSING = object()


def lookup(obj: Any, path: Path, default: Any = None) -> Any:
    """The value at ``path`` in ``obj`` (keys and list indexes), or ``default`` when any step
    is missing or not a container."""
    try:
        for part in path:
            obj = obj[part]
    except (KeyError, IndexError, TypeError):
        return default
    return obj


def dig(obj: Any, *keys: str) -> Any:
    """The value under ``keys`` (mapping keys only), or None: ``dig(pod, "spec", "nodeName")``."""
    return lookup(obj, keys)


def has(obj: Any, path: Path) -> bool:
    """True when ``path`` exists in ``obj`` (even with a null value)."""
    return lookup(obj, path, _MISSING) is not _MISSING


def pop(obj: Any, *keys: str) -> bool:
    """Remove the value under ``keys`` if present; True if something was removed."""
    parent = lookup(obj, keys[:-1], None) if len(keys) > 1 else obj
    return isinstance(parent, dict) and parent.pop(keys[-1], None) is not None


def escape_token(token: str) -> str:
    """One JSON Pointer reference token escaped: ``~`` → ``~0``, ``/`` → ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def join_pointer(*tokens: str | int) -> str:
    """A JSON Pointer (RFC 6901) from unescaped tokens: ``join_pointer("metadata", "labels",
    "a/b")`` is ``/metadata/labels/a~1b``."""
    return "".join("/" + escape_token(str(token)) for token in tokens)


def meta(obj: Mapping[str, Any]) -> Obj:
    """The object's metadata (an empty dict when it has none)."""
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    """The object's namespace, "" for a cluster-scoped object."""
    return str(meta(obj).get("namespace") or "")


def labels_of(obj: Mapping[str, Any]) -> Obj:
    return meta(obj).get("labels") or {}


def annotations_of(obj: Mapping[str, Any]) -> Obj:
    return meta(obj).get("annotations") or {}


def object_ref(obj: Mapping[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, namespace (when namespaced) and name: how reports name an object."""
    ref = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta(obj).get("name"),
    }
    if meta(obj).get("namespace"):
        ref["namespace"] = meta(obj)["namespace"]
    return ref


def describe_ref(ref: Mapping[str, Any]) -> str:
    """``networking.k8s.io/v1 Ingress shop/web``."""
    where = f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else str(ref.get("name"))
    return f"{ref.get('apiVersion')} {ref.get('kind')} {where}"


# Metadata an API server sets on every object, never a client; each with why it cannot travel
# to another cluster. Export strips them, import removes them before apply whatever the
# snapshot holds, verify never compares them.
SERVER_METADATA: Sequence[tuple[str, str]] = (
    ("uid", "assigned by the API server; the new cluster assigns its own"),
    ("resourceVersion", "the old etcd's revision; meaningless to the new cluster"),
    ("creationTimestamp", "set by the API server when the object is created"),
    ("generation", "counted by the API server from creation"),
    ("managedFields", "field ownership of the old cluster's clients"),
    ("selfLink", "an URL of the old API server"),
    ("deletionTimestamp", "the object was being deleted in the old cluster"),
    ("deletionGracePeriodSeconds", "the object was being deleted in the old cluster"),
)
SERVER_METADATA_FIELDS: frozenset[str] = frozenset(name for name, _reason in SERVER_METADATA)


def without_server_fields(obj: Mapping[str, Any]) -> Obj:
    """A copy of ``obj`` without status and the metadata only an API server sets (its
    metadata copied; nested values shared): what a client may send."""
    body = {key: value for key, value in obj.items() if key != "status"}
    body["metadata"] = {k: v for k, v in meta(obj).items() if k not in SERVER_METADATA_FIELDS}
    return body


def apply_body(obj: Mapping[str, Any], entry: ResourceEntry) -> Obj:
    """What applying a snapshot object sends: the apiVersion and kind of its entry, no status
    and no server metadata. A new dict (metadata copied): the snapshot object never changes."""
    body = without_server_fields(obj)
    body["apiVersion"] = api_version(entry)
    body["kind"] = entry["kind"]
    return body

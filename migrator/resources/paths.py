"""The URL paths of collections and objects: the one place that builds them.

``/api/v1/namespaces/shop/configmaps/web`` for the core group, ``/apis/apps/v1/...`` for the
others; a namespaced type listed without a namespace is listed across all namespaces.
"""

from __future__ import annotations

from migrator.kube.discovery import group_version_path
from migrator.snapshot.layout import ResourceEntry, api_version

__all__ = [
    "collection_path",
    "entry_collection_path",
    "entry_object_path",
    "group_version_path",
    "object_path",
]


def collection_path(api_version: str, resource: str, namespace: str | None = None) -> str:
    """The list URL of ``resource`` at ``api_version``: in ``namespace``, or cluster-wide when
    it is None or empty (the caller passes a namespace only for namespaced types)."""
    base = group_version_path(api_version)
    if namespace:
        return f"{base}/namespaces/{namespace}/{resource}"
    return f"{base}/{resource}"


def object_path(api_version: str, resource: str, name: str, namespace: str | None = None) -> str:
    """The URL of one object."""
    return f"{collection_path(api_version, resource, namespace)}/{name}"


def entry_collection_path(entry: ResourceEntry, namespace: str | None = None) -> str:
    """The list URL of a snapshot entry's type: in ``namespace`` if the type is namespaced."""
    return collection_path(
        api_version(entry), entry["resource"], namespace if entry["namespaced"] else None
    )


def entry_object_path(entry: ResourceEntry, namespace: str, name: str) -> str:
    """The URL of one object of a snapshot entry's type."""
    return object_path(
        api_version(entry), entry["resource"], name, namespace if entry["namespaced"] else None
    )

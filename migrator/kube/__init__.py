"""Cluster access: connect through a kubeconfig context, discover, page through lists, retry."""

from __future__ import annotations

import os
from typing import Any

from migrator.kube.client import Cluster
from migrator.kube.discovery import APIGroup, APIResource, Discovery, ServerVersion, discover
from migrator.kube.pager import iter_items

__all__ = [
    "APIGroup",
    "APIResource",
    "Cluster",
    "Discovery",
    "ServerVersion",
    "connect",
    "discover",
    "iter_items",
]


def connect(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    **kw: Any,
) -> Cluster:
    """Connect to the cluster of ``context`` (None: the current-context) in ``kubeconfig``.

    ``kubeconfig`` None means ``$KUBECONFIG``, else ``~/.kube/config``. Keyword arguments go to
    :class:`Cluster` (``pool_size``, ``connect_timeout``, ``read_timeout``, ``retry_policy``).
    """
    return Cluster(kubeconfig, context, **kw)

"""A namespace of one name on several clusters, for tests whose objects keep their namespace
from one cluster to the other (moved claims, a Service behind one name on both).

``from tests.namespaces import shared_namespace``.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from migrator.errors import ApiError


@contextmanager
def shared_namespace(clusters: list, prefix: str = "t-movers") -> Iterator[str]:
    """A namespace of one name on every cluster of ``clusters`` (their proving-ground fixtures);
    deleted from each afterwards, also when making it failed part way."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        for cluster in clusters:
            cluster.client.request("POST", "/api/v1/namespaces", body={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        yield name
    finally:
        for cluster in clusters:
            with suppress(ApiError):  # never made, or already gone
                cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")

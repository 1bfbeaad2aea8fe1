"""Paginated lists: one page at a time, so a huge collection never sits in memory whole."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrator.kube.client import Cluster

DEFAULT_PAGE_SIZE = 500


def iter_items(
    cluster: Cluster,
    path: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the items of a list endpoint, following ``metadata.continue`` page after page."""
    token = ""
    while True:
        params: dict[str, str | int | bool] = {**(query or {}), "limit": limit}
        if token:
            params["continue"] = token
        page = cluster.request("GET", path, query=params)
        yield from page.get("items") or ()
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return

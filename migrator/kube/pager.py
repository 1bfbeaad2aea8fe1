"""Paginated lists: one page at a time, so a huge collection never sits in memory whole."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from migrator.kube.client import Cluster

DEFAULT_PAGE_SIZE = 500

T = TypeVar("T")


def iter_pages(
    cluster: Cluster,
    path: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each page (the decoded list document) of a list endpoint, following ``continue``.

    Callers that want the list's ``metadata`` (``remainingItemCount`` for progress, the
    ``resourceVersion``) use this; a 410 Expired from a stale token surfaces as the
    :class:`~migrator.errors.ApiError` of the request, for the caller to restart the list.
    """
    token = ""
    while True:
        params: dict[str, str | int | bool] = {**(query or {}), "limit": limit}
        if token:
            params["continue"] = token
        page = cluster.request("GET", path, query=params)
        yield page
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def iter_items(
    cluster: Cluster,
    path: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the items of a list endpoint, following ``metadata.continue`` page after page."""
    for page in iter_pages(cluster, path, limit=limit, query=query):
        yield from page.get("items") or ()


def prefetched(pages: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what ``pages`` yields, fetching up to ``depth`` items ahead in a helper thread.

    While the caller works on one page, the API server is already producing the next: the
    two overlap instead of taking turns (the socket wait releases the GIL). An exception of
    ``pages`` is re-raised in the caller at the point it would have surfaced; a caller that
    stops early (or fails) stops the helper at its next page.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stopped = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stopped.is_set():
                    try:
                        handoff.put(("page", page), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stopped.is_set():
                    return
            handoff.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(("error", exc))

    helper = threading.Thread(target=produce, name="prefetch", daemon=True)
    helper.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stopped.set()
        while helper.is_alive():  # unblock a helper waiting on a full queue, then join it
            try:
                handoff.get_nowait()
            except queue.Empty:
                pass
            helper.join(timeout=0.05)

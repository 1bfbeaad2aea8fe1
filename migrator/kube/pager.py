"""Paginated lists: one page at a time, so a huge collection never sits in memory whole."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from migrator import jsoncodec

if TYPE_CHECKING:
    from migrator.kube.client import Cluster

DEFAULT_PAGE_SIZE = 500
# Lists of objects' metadata only: what exists, without the objects' content.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

T = TypeVar("T")


def iter_pages(
    cluster: Cluster,
    path: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
    accept: str = "application/json",
) -> Iterator[dict[str, Any]]:
    """Yield each page (the decoded list document) of a list endpoint, following ``continue``.

    Callers that want the list's ``metadata`` (``remainingItemCount`` for progress, the
    ``resourceVersion``) use this; a 410 Expired from a stale token surfaces as the
    :class:`~migrator.errors.ApiError` of the request, for the caller to restart the list.
    """
    return iter_handled_pages(
        cluster, path, jsoncodec.loads, continue_token, limit=limit, query=query, accept=accept
    )


def iter_handled_pages(
    cluster: Cluster,
    path: str,
    handle: Callable[[bytes], T],
    token_of: Callable[[T], str],
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
    accept: str = "application/json",
) -> Generator[T, None, None]:
    """Yield ``handle(body)`` of each page of a list endpoint, following the continue token
    ``token_of`` finds in what ``handle`` made of the page: for callers that decode pages
    their own way (elsewhere, or into something else than the list document). ``accept``
    may ask for another representation (metadata only: :data:`METADATA_LIST`)."""
    token = ""
    while True:
        params: dict[str, str | int | bool] = {**(query or {}), "limit": limit}
        if token:
            params["continue"] = token
        handled = handle(cluster.request_raw("GET", path, query=params, accept=accept))
        yield handled
        token = token_of(handled)
        if not token:
            return


def continue_token(page: Mapping[str, Any]) -> str:
    """The continue token of a decoded list page ("" on the last page)."""
    return (page.get("metadata") or {}).get("continue") or ""


def iter_items(
    cluster: Cluster,
    path: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    query: Mapping[str, str | int | bool] | None = None,
    accept: str = "application/json",
) -> Iterator[dict[str, Any]]:
    """Yield the items of a list endpoint, following ``metadata.continue`` page after page."""
    for page in iter_pages(cluster, path, limit=limit, query=query, accept=accept):
        yield from page.get("items") or ()


def fan_in(sources: list[Iterator[T]], parallel: int, depth: int = 1) -> Iterator[T]:
    """Yield what every source yields, ``parallel`` sources read at once by helper threads.

    Each source's items come in their order; items of different sources interleave. Up to
    ``depth`` items wait for the caller, so memory stays bounded whatever the sources hold.
    The first exception of any source is re-raised in the caller; a caller that stops early
    (or fails) stops every helper at its next item. With one source this is read-ahead;
    with many (a huge type's per-namespace lists) the API server produces several lists
    at once while the caller processes what has arrived.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stopped = threading.Event()
    pending = iter(sources)
    pending_lock = threading.Lock()

    def hand_over(message: tuple[str, Any]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while not stopped.is_set():
                with pending_lock:
                    source = next(pending, None)
                if source is None:
                    break
                for item in source:
                    if not hand_over(("item", item)):
                        return
            hand_over(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over(("error", exc))

    helpers = [
        threading.Thread(target=produce, name="prefetch", daemon=True)
        for _ in range(max(1, min(parallel, len(sources))))
    ]
    for helper in helpers:
        helper.start()
    try:
        running = len(helpers)
        while running:
            kind, value = handoff.get()
            if kind == "end":
                running -= 1
            elif kind == "error":
                raise value
            else:
                yield value
    finally:
        stopped.set()
        for helper in helpers:  # unblock helpers waiting on a full queue, then join them
            while helper.is_alive():
                with contextlib.suppress(queue.Empty):
                    handoff.get_nowait()
                helper.join(timeout=0.05)

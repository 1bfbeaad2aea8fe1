"""Listing resource types concurrently and streaming their objects into the snapshot.

One task per resource type on a bounded thread pool (the GIL is released while a thread waits
for the API server, so listing and writing overlap). A task pages through its list with
``limit`` + ``continue``, the next page being fetched while the current one is processed,
parses each page once, and hands the pages to :func:`~migrator.export.listing.export_pages`,
which classifies, strips and writes every item at once: at most one page per worker is in
memory. A 410 Expired (the continue token outlived etcd's compaction window) restarts that
type's list from the first page, after throwing away what was written of it
(:func:`~migrator.export.listing.restart_on_expiry`).

Failures of one type (an API error, a cluster that stopped answering) are recorded in its
report and the others go on; a failing store, or an interruption, stops everything.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from migrator.errors import ApiError, ClusterUnreachable
from migrator.export import rules
from migrator.export.listing import Page, PageRules, export_pages, restart_on_expiry
from migrator.export.report import EXPORTED, FAILED, SKIPPED, ResourceReport
from migrator.export.scope import NamespaceScope
from migrator.export.selection import ResourceType
from migrator.kube.client import Cluster
from migrator.kube.pager import DEFAULT_PAGE_SIZE, iter_pages, prefetched
from migrator.snapshot import SnapshotWriter

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 6
MAX_LIST_RESTARTS = 3

# on_progress(resource_key, objects_done, total_hint): total_hint is the API server's count of
# the whole list when it gives one (``remainingItemCount``), else None.
ProgressCallback = Callable[[str, int, int | None], None]

@dataclass(frozen=True)
class ListOptions:
    """How each resource type is listed and written."""

    scope: NamespaceScope = field(default_factory=NamespaceScope)
    label_selector: str | None = None
    keep_node_ports: bool = False
    workers: int = DEFAULT_WORKERS
    page_size: int = DEFAULT_PAGE_SIZE
    max_list_restarts: int = MAX_LIST_RESTARTS


class Interrupted(Exception):
    """Raised inside workers when the export as a whole is stopping."""


def export_types(
    cluster: Cluster,
    writer: SnapshotWriter,
    types: list[ResourceType],
    options: ListOptions,
    *,
    on_progress: ProgressCallback | None = None,
    on_finished: Callable[[ResourceType, ResourceReport], None] | None = None,
) -> list[ResourceReport]:
    """Export every type of ``types`` into ``writer``; one report per type, in ``types`` order.

    ``on_finished`` is called (from a worker thread) with each type's report before its
    resource is closed, so it can persist the report beside the parts.
    """
    stop = threading.Event()
    workers = max(1, min(options.workers, len(types) or 1))
    task = _TypeExport(cluster, writer, options, stop, on_progress, on_finished)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
        futures = [pool.submit(task.run, rtype) for rtype in types]
        try:
            done, _pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a fatal error (store, interruption) surfaces here
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return [future.result() for future in futures]


def count_objects(
    cluster: Cluster, rtype: ResourceType, namespaces: list[str] | None, label_selector: str | None
) -> int | None:
    """How many objects a type holds, from one-item lists (None when the server won't say)."""
    total = 0
    for path in _paths(rtype, namespaces):
        query: dict[str, str | int | bool] = {"limit": 1}
        if label_selector:
            query["labelSelector"] = label_selector
        page = cluster.request("GET", path, query=query)
        meta = page.get("metadata") or {}
        items = len(page.get("items") or ())
        if meta.get("remainingItemCount") is not None:
            total += items + int(meta["remainingItemCount"])
        elif meta.get("continue"):
            return None
        else:
            total += items
    return total


def _paths(rtype: ResourceType, namespaces: list[str] | None) -> list[str]:
    if namespaces is None or not rtype.namespaced:
        return [rtype.list_path()]
    return [rtype.list_path(ns) for ns in namespaces]


class _TypeExport:
    """The work of one resource type; ``run`` is called once per type on a pool thread."""

    def __init__(
        self,
        cluster: Cluster,
        writer: SnapshotWriter,
        options: ListOptions,
        stop: threading.Event,
        on_progress: ProgressCallback | None,
        on_finished: Callable[[ResourceType, ResourceReport], None] | None,
    ) -> None:
        self.cluster = cluster
        self.writer = writer
        self.options = options
        self.stop = stop
        self.on_progress = on_progress
        self.on_finished = on_finished

    def run(self, rtype: ResourceType) -> ResourceReport:
        report = ResourceReport(
            key=rtype.key,
            group_version=rtype.group_version,
            kind=rtype.kind,
            namespaced=rtype.namespaced,
            aliases=rtype.aliases,
        )
        started = time.monotonic()
        try:
            if self.stop.is_set():
                raise Interrupted()
            skip = rules.type_skip(rtype)
            if skip is not None:
                report.state, report.skip_rule = SKIPPED, skip.name
                report.existing = count_objects(
                    self.cluster,
                    rtype,
                    self.options.scope.namespaces_to_list(),
                    self.options.label_selector,
                )
            else:
                self._export(rtype, report)
        except (ApiError, ClusterUnreachable) as exc:
            log.warning("export of %s failed: %s", rtype.key, exc)
            report.state, report.error = FAILED, str(exc)
        finally:
            report.seconds = time.monotonic() - started
        return report

    def _export(self, rtype: ResourceType, report: ResourceReport) -> None:
        resource = self.writer.resource(
            rtype.group, rtype.version, rtype.resource, rtype.kind, rtype.namespaced
        )
        page_rules = PageRules(
            scope=self.options.scope,
            strip=rules.StripOptions(keep_node_ports=self.options.keep_node_ports),
        )

        def on_page(total: int | None) -> None:
            if self.on_progress is not None:
                self.on_progress(rtype.key, report.listed, total)

        def list_once() -> None:
            export_pages(self._pages(rtype), rtype, resource.write, report, page_rules,
                         on_page=on_page)

        def before_restart(_exc: ApiError) -> None:
            resource.reset()
            report.reset_counts()

        try:
            _result, report.list_restarts = restart_on_expiry(
                list_once,
                max_restarts=self.options.max_list_restarts,
                before_restart=before_restart,
            )
            report.state = EXPORTED
            if self.on_finished is not None:
                self.on_finished(rtype, report)
        except BaseException:
            resource.abort()
            raise
        resource.close()

    def _pages(self, rtype: ResourceType) -> Iterator[Page]:
        """Each page's items with a hint of the total, over every list the scope needs."""
        scope = self.options.scope
        query: dict[str, str | int | bool] = {}
        if self.options.label_selector:
            query["labelSelector"] = self.options.label_selector
        selector = scope.field_selector() if rtype.namespaced else None
        if selector:
            query["fieldSelector"] = selector
        paths = _paths(rtype, scope.namespaces_to_list())
        before = 0
        for index, path in enumerate(paths):
            last = index == len(paths) - 1  # only then is a total over all paths known
            listed = 0
            pages = iter_pages(self.cluster, path, limit=self.options.page_size, query=query)
            for page in prefetched(pages):
                if self.stop.is_set():
                    raise Interrupted()
                items = page.get("items") or []
                meta = page.get("metadata") or {}
                listed += len(items)
                hint = None
                if last and not meta.get("continue"):
                    hint = before + listed
                elif last and meta.get("remainingItemCount") is not None:
                    hint = before + listed + int(meta["remainingItemCount"])
                yield Page(items, hint)
            before += listed


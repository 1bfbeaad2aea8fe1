"""Listing resource types concurrently and streaming their objects into the snapshot.

One task per resource type on a bounded thread pool (the GIL is released while a thread waits
for the API server, so listing and writing overlap). A task pages through its list with
``limit`` + ``continue``; each page's body goes to the page workers
(:class:`~migrator.export.pages.PageWorkers`: worker processes, or the task's own thread),
which parse, classify, strip, encode and compress it in one go, and
:func:`~migrator.export.listing.export_pages` appends the result to the resource's parts:
at most a page or two per worker is in memory. A 410 Expired (the continue token outlived
etcd's compaction window) restarts that type's list from the first page, after throwing
away what was written of it (:func:`~migrator.export.listing.restart_on_expiry`). One huge
namespaced type (thousands of ConfigMaps, say) would be a long sequence of pages while the
other workers idle: it is read namespace by namespace instead, several lists at once, into
the same page loop.

A type the API server refuses to list (a forbidden type, an aggregated API whose backend is
down) is recorded as failed in its report and the others go on; a cluster that stops
answering, a failing store, or an interruption stops everything, with every finished type
kept for the resumed run (see :class:`~migrator.errors.TemporaryError`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from migrator.errors import ApiError, Interrupted
from migrator.export.listing import export_pages, restart_on_expiry
from migrator.export.pages import PageResult, PageSpec, PageWorkers, list_total
from migrator.export.report import EXPORTED, FAILED, SKIPPED, ResourceReport
from migrator.export.strips import StripOptions
from migrator.kube.client import Cluster
from migrator.kube.pager import DEFAULT_PAGE_SIZE, fan_in, iter_handled_pages, iter_items
from migrator.resources.crds import CrdInfo
from migrator.resources.regenerated import type_skip
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType
from migrator.run.processes import default_processes
from migrator.run.progress import Progress
from migrator.snapshot import SnapshotWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_WORKERS = 6
MAX_LIST_RESTARTS = 3
# A namespaced type whose cluster-wide list holds more objects than this is read per namespace,
# several lists at once (see _TypeExport._pages): one long list is one page after the other.
FAN_OUT_ABOVE = 4 * DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class ListOptions:
    """How each resource type is listed and written."""

    scope: Scope = field(default_factory=Scope.for_export)
    label_selector: str | None = None
    strip: StripOptions = field(default_factory=StripOptions)
    workers: int = DEFAULT_WORKERS
    processes: int | None = None  # page worker processes; None: default_processes()
    page_size: int = DEFAULT_PAGE_SIZE
    max_list_restarts: int = MAX_LIST_RESTARTS
    fan_out_above: int = FAN_OUT_ABOVE
    # Custom resources read at their storage version, because their CRD converts through a
    # webhook: a failure to list them is explained with the CRD and its webhook.
    webhooks: Mapping[tuple[str, str], CrdInfo] = field(default_factory=dict)


def export_types(
    cluster: Cluster,
    writer: SnapshotWriter,
    types: list[ResourceType],
    options: ListOptions,
    *,
    on_progress: Progress | None = None,
    on_finished: Callable[[ResourceType, ResourceReport], None] | None = None,
) -> list[ResourceReport]:
    """Export every type of ``types`` into ``writer``; one report per type, in ``types`` order.

    ``on_progress(type key, objects done, total)`` gets the API server's count of the whole
    list as total when it gives one (``remainingItemCount``), else None. ``on_finished`` is
    called (from a worker thread) with each type's report before its
    resource is closed, so it can persist the report beside the parts.
    """
    stop = threading.Event()
    workers = max(1, min(options.workers, len(types) or 1))
    processes = default_processes() if options.processes is None else options.processes
    with PageWorkers(processes if types else 0) as page_workers:  # before the threads start
        task = _TypeExport(cluster, writer, options, page_workers, stop, on_progress, on_finished)
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
        page_workers: PageWorkers,
        stop: threading.Event,
        on_progress: Progress | None,
        on_finished: Callable[[ResourceType, ResourceReport], None] | None,
    ) -> None:
        self.cluster = cluster
        self.writer = writer
        self.options = options
        self.page_workers = page_workers
        self.stop = stop
        self.on_progress = on_progress
        self.on_finished = on_finished
        self.fan_out = threading.Lock()  # held by the one type being read per namespace

    def run(self, rtype: ResourceType) -> ResourceReport:
        report = ResourceReport.for_type(rtype)
        started = time.monotonic()
        try:
            if self.stop.is_set():
                raise Interrupted("the export is stopping")
            skip = type_skip(rtype.group, rtype.resource)
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
        except ApiError as exc:
            log.warning("export of %s failed: %s", rtype.key, exc)
            report.state, report.error = FAILED, self._explain(rtype, exc)
        finally:
            report.seconds = time.monotonic() - started
        return report

    def _explain(self, rtype: ResourceType, exc: ApiError) -> str:
        """The error of a failed list, with the conversion webhook named when it is likely
        the cause: objects stored at several versions need it even at the storage version."""
        info = self.options.webhooks.get(rtype.identity)
        if info is None or info.webhook is None:
            return str(exc)
        return (
            f"{exc} (CRD {info.name} converts through its webhook, "
            f"{info.webhook.describe()}: some of its objects are stored at a version other "
            f"than {info.storage_version} and reading them needs the webhook. Make the "
            "webhook serve in the source cluster and export again, or leave the type out "
            f"with --exclude-resource {rtype.key})"
        )

    def _export(self, rtype: ResourceType, report: ResourceReport) -> None:
        resource = self.writer.resource(
            rtype.group, rtype.version, rtype.resource, rtype.kind, rtype.namespaced
        )
        spec = PageSpec(rtype, scope=self.options.scope, strip=self.options.strip)

        def on_page(total: int | None) -> None:
            if self.on_progress is not None:
                self.on_progress(rtype.key, report.listed, total)

        def write(result: PageResult) -> None:
            resource.write_members(
                (result.member, result.exported, result.line_bytes),
                (result.aside_member, result.aside, result.aside_bytes),
            )

        def reprocess(raw: bytes, exclude: frozenset[str]) -> PageResult:
            return self.page_workers.process(raw, spec, exclude)

        def list_once() -> None:
            export_pages(self._pages(spec), write, report, reprocess=reprocess, on_page=on_page)

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

    def _pages(self, spec: PageSpec) -> Iterator[tuple[bytes, PageResult]]:
        """Each page of the type's objects in scope, processed, with the body it came from.

        A namespaced type is listed cluster-wide, unless it turns out huge: more than
        ``fan_out_above`` objects (asked with a one-item list when the first page cannot
        say, as with a field selector; a count the server won't give counts as huge). Then,
        that first page dropped, it is read namespace by namespace, :func:`fan_out_width`
        lists at a time, so the API server produces several lists at once instead of one
        page after the other. One type at a time fans out, which keeps the requests in
        flight within :func:`connections_needed`.
        """
        rtype, scope = spec.rtype, self.options.scope
        namespaces = scope.namespaces_to_list()
        if rtype.namespaced and namespaces is not None:
            with self._fan_out_slot() as width:
                yield from self._fanned_out(spec, namespaces, None, width)
            return
        pages = self._list(spec, rtype.list_path(), self._query(rtype, cluster_wide=True))
        first = next(pages)
        total = first[1].total
        if rtype.namespaced:
            size = total if total is not None else self._count(rtype)
            if size is None or size > self.options.fan_out_above:
                with self._fan_out_slot() as width:
                    if width > 1:
                        pages.close()
                        log.info(
                            "%s holds %s objects: listing it per namespace, %d at a time",
                            rtype.key,
                            size or "many",
                            width,
                        )
                        names = [ns for ns in self._namespace_names() if scope.admits_namespace(ns)]
                        yield from self._fanned_out(spec, names, total, width)
                        return
        for page in itertools.chain([first], pages):
            self._check_stop()
            yield page

    def _list(
        self, spec: PageSpec, path: str, query: dict[str, str | int | bool]
    ) -> Generator[tuple[bytes, PageResult], None, None]:
        """The pages of one list, each processed by the page workers once it arrives."""

        def handle(raw: bytes) -> tuple[bytes, PageResult]:
            return raw, self.page_workers.process(raw, spec)

        return iter_handled_pages(
            self.cluster, path, handle, _continue_of, limit=self.options.page_size, query=query
        )

    def _fanned_out(
        self, spec: PageSpec, namespaces: list[str], total: int | None, width: int
    ) -> Iterator[tuple[bytes, PageResult]]:
        """The pages of one list per namespace, ``width`` read at once, each carrying the
        whole type's ``total``: when not given, known once every namespace's first page
        has told its own."""
        query = self._query(spec.rtype, cluster_wide=False)
        sources = [
            _tagged(index, self._list(spec, spec.rtype.list_path(ns), query))
            for index, ns in enumerate(namespaces)
        ]
        totals: dict[int, int | None] = {}
        for index, (raw, result) in fan_in(sources, parallel=width):
            self._check_stop()
            if total is None and index not in totals:
                totals[index] = result.total
                if len(totals) == len(namespaces) and None not in totals.values():
                    total = sum(t for t in totals.values() if t is not None)
            result.total = total
            yield raw, result

    @contextlib.contextmanager
    def _fan_out_slot(self) -> Iterator[int]:
        """How many lists the caller may read at once: :func:`fan_out_width` for the one type
        holding the slot, 1 for the others while it is taken."""
        if not self.fan_out.acquire(blocking=False):
            yield 1
            return
        try:
            yield fan_out_width(self.options.workers)
        finally:
            self.fan_out.release()

    def _count(self, rtype: ResourceType) -> int | None:
        """The type's object count over all namespaces from a one-item list without
        selectors, which would hide it; None when the server won't say, or when a label
        selector makes the whole type's count meaningless."""
        if self.options.label_selector:
            return None
        page = self.cluster.request("GET", rtype.list_path(), query={"limit": 1})
        return list_total(page)

    def _query(self, rtype: ResourceType, *, cluster_wide: bool) -> dict[str, str | int | bool]:
        query: dict[str, str | int | bool] = {}
        if self.options.label_selector:
            query["labelSelector"] = self.options.label_selector
        selector = self.options.scope.field_selector() if rtype.namespaced else None
        if selector and cluster_wide:
            query["fieldSelector"] = selector
        return query

    def _namespace_names(self) -> list[str]:
        items = iter_items(self.cluster, "/api/v1/namespaces", limit=self.options.page_size)
        return [item["metadata"]["name"] for item in items]

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted("the export is stopping")


def _tagged(tag: int, pages: Iterator[T]) -> Iterator[tuple[int, T]]:
    for page in pages:
        yield tag, page


def _continue_of(page: tuple[bytes, PageResult]) -> str:
    return page[1].continue_token


def fan_out_width(workers: int) -> int:
    """How many namespace lists of one huge type run at once: as many as there are workers
    (at least two). A huge type is found after its first page, when the many small types
    have mostly been listed and their workers idle; measured on the proving ground, six
    lists at once beat three, which beat one long list by half."""
    return max(2, workers)


def connections_needed(workers: int) -> int:
    """The connection pool an export with ``workers`` needs: a request per worker, the
    fan-out of one huge type, and two to spare (discovery, the namespace list)."""
    return workers + fan_out_width(workers) + 2

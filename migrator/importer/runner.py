"""Running an import: phase after phase, objects of a phase in parallel, progress recorded.

:func:`plan` takes the snapshot's inventory (:mod:`~migrator.resources.inventory`: what to
create, phase by phase, changing nothing); :func:`apply` takes the target's import lock,
then runs each phase of :mod:`~migrator.resources.order`: the phase's objects are
read part by part, cut into batches, and applied by a bounded thread pool (at most a few
objects per worker in flight, so memory stays flat however big the snapshot). When every
object of a batch has an outcome the batch is recorded in the store
(:mod:`~migrator.importer.progress`); a re-run skips what is recorded. After the CRD phase the
import waits until each CRD is Established and re-reads the target's discovery, so the
custom resources that follow find their types.

An object the API server refuses does not stop anything: its outcome is ``failed`` with the
server's message, and the report lists it. Only losing the cluster (or the lock) stops the
run, with everything finished so far recorded for the next one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError, NotServed
from migrator.importer.apply import (
    LEFT_TO_GITOPS,
    SKIPPED,
    UNCHECKED,
    Applier,
    ConflictPolicy,
    Existing,
    list_existing,
)
from migrator.importer.progress import FAILED, BatchId, ImportProgress, ObjectOutcome
from migrator.importer.ratelimit import RateLimiter
from migrator.importer.report import ImportReport
from migrator.kube import Cluster, Discovery, discover
from migrator.kube.lease import Lease
from migrator.kube.summary import cluster_id
from migrator.kube.wait import READY, wait_for, wait_for_all
from migrator.resources import order
from migrator.resources.crds import CrdInfo, by_identity, live_crds
from migrator.resources.gitops import gitops_manager
from migrator.resources.identity import is_custom
from migrator.resources.inventory import Inventory, take_inventory
from migrator.resources.objects import apply_body, name_of
from migrator.resources.owners import Key, object_key, relink
from migrator.resources.readiness import endpoints_ready, readiness
from migrator.resources.scope import Scope
from migrator.run.progress import Progress
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import api_version, entry_folder

log = logging.getLogger(__name__)

LOCK_NAME = "migrator-import"  # the Lease in the target's kube-system: one import at a time
_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_IN_FLIGHT_PER_WORKER = 4


@dataclass(frozen=True)
class ImportOptions:
    """How to import; see ``migrator import --help`` for each."""

    conflict: ConflictPolicy = ConflictPolicy.SKIP
    scope: Scope = field(default_factory=Scope)
    dry_run: bool = False
    workers: int = 8
    qps: float = 0.0
    restore_status: bool = False
    restart: bool = False
    batch_size: int = 200
    crd_timeout: float = 120.0
    crd_poll: float = 0.2
    webhook_timeout: float = 120.0  # waiting for a conversion webhook's endpoints
    lock_seconds: int = 30  # the import lease: a stalled holder loses it after this long
    # Objects a GitOps tool (Argo CD, Flux) manages are left to it: the tool applies them to
    # the new cluster itself (verify checks they arrived).
    leave_to_gitops: bool = False

    def fingerprint(self, reader: SnapshotReader) -> dict[str, Any]:
        """What makes two runs the same import (and so lets them share progress)."""
        return {
            "snapshotCompletedAt": reader.manifest.get("completed_at"),
            "conflict": self.conflict.value,
            "scope": self.scope.to_dict(),
            "restoreStatus": self.restore_status,
            "leaveToGitops": self.leave_to_gitops,
        }


def plan(reader: SnapshotReader, scope: Scope) -> Inventory:
    """What importing the snapshot of ``reader`` within ``scope`` will create, phase by
    phase; reads the snapshot, touches no cluster."""
    return take_inventory(reader, scope)


def import_snapshot(
    reader: SnapshotReader,
    cluster: Cluster,
    options: ImportOptions,
    *,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Plan and apply the import of the snapshot of ``reader`` into ``cluster``."""
    return apply(plan(reader, options.scope), reader, cluster, options, on_progress=on_progress)


def apply(
    plan: Inventory,
    reader: SnapshotReader,
    cluster: Cluster,
    options: ImportOptions,
    *,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import the planned objects of the snapshot of ``reader`` into ``cluster``; see the
    module doc.

    Raises :class:`~migrator.errors.LockHeld` if another import holds the target, and
    :class:`~migrator.errors.ClusterUnreachable` if the target goes away; otherwise returns
    the report, whose ``partial`` says whether some objects failed.
    """
    started = time.monotonic()
    target = {"context": cluster.context, "server": cluster.server, "clusterId": ""}
    report = ImportReport(
        snapshot_id=reader.snapshot_id,
        store=reader.store.url,
        target=target,
        conflict=options.conflict.value,
        dry_run=options.dry_run,
        scope=options.scope.to_dict(),
        restore_status=options.restore_status,
        out_of_scope=plan.out_of_scope,
    )
    target["clusterId"] = cluster_id(cluster)
    with contextlib.ExitStack() as stack:
        progress = None
        lock = None
        if not options.dry_run:
            lock = stack.enter_context(
                Lease(
                    cluster,
                    LOCK_NAME,
                    "import",
                    {"snapshot": reader.snapshot_id, "store": reader.store.url},
                    duration=options.lock_seconds,
                )
            )
            progress = ImportProgress(
                reader.store,
                reader.snapshot_id,
                target["clusterId"],
                options.fingerprint(reader),
                target,
                restart=options.restart,
            )
            report.resumed, report.discarded_progress = progress.resumed, progress.discarded
        run = _Run(reader, cluster, options, plan, report, progress, on_progress, lock)
        run.execute()
        report.seconds = time.monotonic() - started
        if progress is not None:
            progress.save_report(report.to_dict())
    return report


class _Batch:
    """The objects of one batch still waiting for an outcome; recorded when none is left."""

    def __init__(self, batch_id: BatchId, size: int, on_complete: Callable[[_Batch], None]):
        self.batch_id = batch_id
        self.remaining = size
        self.outcomes: list[ObjectOutcome] = []
        self.fresh = 0  # outcomes of this run (not copied from an earlier run's record)
        self._on_complete = on_complete
        self._lock = threading.Lock()

    def finish(self, outcome: ObjectOutcome, *, earlier: bool = False) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            self.fresh += not earlier
            self.remaining -= 1
            complete = self.remaining == 0
        if complete:
            self._on_complete(self)

    @property
    def failed(self) -> bool:
        return any(o.outcome == FAILED for o in self.outcomes)


@dataclass
class _EntryContext:
    """What every object of one type needs in one phase."""

    phase: str
    entry: ResourceEntry
    existing: dict[tuple[str, str], Existing]
    not_served: str | None = None
    statuses: dict[tuple[str, str], Any] | None = None
    status_subresource: bool = False


def _still_there(context: _EntryContext, outcome: ObjectOutcome) -> bool:
    """True if the target holds the object an earlier run recorded (dry runs record nothing)."""
    return (outcome.namespace, outcome.name) in context.existing


class _Run:
    """One execution of an import plan (the state shared by the producer and the workers)."""

    def __init__(
        self,
        reader: SnapshotReader,
        cluster: Cluster,
        options: ImportOptions,
        plan: Inventory,
        report: ImportReport,
        progress: ImportProgress | None,
        on_progress: Progress | None,
        lock: Lease | None = None,
    ) -> None:
        self.reader = reader
        self.lock = lock
        self.cluster = cluster
        self.options = options
        self.plan = plan
        self.report = report
        self.progress = progress
        self.on_progress = on_progress
        self.applier = Applier(
            cluster,
            options.conflict,
            dry_run=options.dry_run,
            resumed=bool(progress and progress.resumed),
            limiter=RateLimiter(options.qps),
        )
        self.discovery: Discovery = discover(cluster)
        self.uids: dict[Key, str] = {}
        self.fatal: BaseException | None = None
        self._crds: dict[tuple[str, str], CrdInfo] | None = None
        self._slots = threading.BoundedSemaphore(options.workers * _IN_FLIGHT_PER_WORKER)
        self._done_in_phase = 0
        self._count_lock = threading.Lock()
        self._part_failures: dict[tuple[str, str, int], bool] = {}
        self._load_uids()

    # -- phases ----------------------------------------------------------------------------

    def execute(self) -> None:
        pool = ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="import")
        try:
            for phase in self.plan.phases():
                total = self.plan.total(phase)
                if not total:
                    continue
                self._run_phase(pool, phase, total)
                if phase == order.CRDS:
                    self._wait_crds()
                    self.discovery = discover(self.cluster)
                    self._crds = None  # the target's CRDs changed: read them again
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._raise_fatal()

    def _run_phase(self, pool: ThreadPoolExecutor, phase: str, total: int) -> None:
        started = time.monotonic()
        report = self.report.add_phase(phase, total)
        self._done_in_phase = 0
        self._part_failures = {}
        self._tick(phase)
        pending: list[Future[ObjectOutcome]] = []
        for entry in self.plan.entries_in(phase):
            self._run_entry(pool, self._context(phase, entry), pending)
        wait(pending)  # a failure is kept by _object_done as self.fatal, raised here
        self._raise_fatal()
        if self.progress is not None:
            if self.lock is not None:
                self.lock.check()
            for (p, folder, part), failed in self._part_failures.items():
                if not failed:
                    self.progress.record_part(p, folder, part, 0)
        report.seconds = time.monotonic() - started

    def _context(self, phase: str, entry: ResourceEntry) -> _EntryContext:
        context = _EntryContext(phase, entry, {})
        served = [r.name for r in self.discovery.resources(api_version(entry), subresources=True)]
        if entry["resource"] not in served:
            context.not_served = (
                f"the target does not serve {entry['resource']} in "
                f"{api_version(entry)}: transform the snapshot for this "
                "target, or install the API (CRD) first"
            )
            return context
        if is_custom(entry["group"]):
            problem = self._conversion_ready(entry)
            if problem is not None:
                context.not_served = problem
                return context
        namespaces = sorted(self.plan.namespaces) if self.options.scope.include_namespaces else None
        try:
            context.existing = list_existing(self.cluster, entry, namespaces)
        except NotServed as exc:
            context.not_served = str(exc)
            return context
        except ApiError as exc:
            context.not_served = f"cannot list what the target holds: {exc}"
            return context
        if is_custom(entry["group"]):
            context.status_subresource = f"{entry['resource']}/status" in served
            # Without a status subresource, status is data like any other field: it always
            # goes back; with one, it is the controller's, restored only when asked.
            if self.options.restore_status or not context.status_subresource:
                context.statuses = {
                    (str(line.get("namespace") or ""), str(line.get("name"))): line["status"]
                    for line in self.reader.iter_aside(entry)
                    if line.get("status")
                }
        return context

    def _run_entry(
        self, pool: ThreadPoolExecutor, context: _EntryContext, pending: list[Future[Any]]
    ) -> None:
        entry, phase = context.entry, context.phase
        folder = entry_folder(entry)
        scope, size = self.options.scope, self.options.batch_size
        for part in range(len(entry["parts"])):
            if self.progress is not None and self.progress.part_done(phase, folder, part):
                if self._part_still_there(context, folder, part):
                    self._replay_part(context, folder, part)
                    continue
                log.info(
                    "%s part %d: recorded as done, but objects are gone from the target: "
                    "importing it again",
                    folder,
                    part,
                )
            self._part_failures.setdefault((phase, folder, part), False)
            batch: list[dict[str, Any]] = []
            index = 0
            for obj in self.reader.iter_part(entry, part):
                if not scope.admits(entry, obj) or self.plan.phase_of(entry, obj) != phase:
                    continue
                batch.append(obj)
                if len(batch) == size:
                    self._submit(pool, context, (phase, folder, part, index), batch, pending)
                    batch, index = [], index + 1
            if batch:
                self._submit(pool, context, (phase, folder, part, index), batch, pending)

    def _recorded(self, context: _EntryContext, folder: str, part: int) -> Iterator[ObjectOutcome]:
        """The outcomes an earlier run recorded for one part, batch after batch."""
        assert self.progress is not None
        index = 0
        while (recorded := self.progress.batch((context.phase, folder, part, index))) is not None:
            yield from recorded.values()
            index += 1

    def _part_still_there(self, context: _EntryContext, folder: str, part: int) -> bool:
        """True if the target still holds every object recorded for the part (what was
        deleted since must be imported again, not counted as done)."""
        return all(_still_there(context, o) for o in self._recorded(context, folder, part))

    def _replay_part(self, context: _EntryContext, folder: str, part: int) -> None:
        """Count a part an earlier run finished, from its records, without reading it."""
        for outcome in self._recorded(context, folder, part):
            self.report.add(context.phase, context.entry, outcome, earlier=True)
            self._tick(context.phase, 1)

    # -- objects ---------------------------------------------------------------------------

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        context: _EntryContext,
        batch_id: BatchId,
        objects: list[dict[str, Any]],
        pending: list[Future[Any]],
    ) -> None:
        self._raise_fatal()
        recorded = self.progress.batch(batch_id) if self.progress is not None else None
        tracker = _Batch(batch_id, len(objects), self._batch_complete)
        for obj in objects:
            meta = obj.get("metadata") or {}
            ident = (str(meta.get("namespace") or ""), str(meta.get("name")))
            prior = recorded.get(ident) if recorded else None
            if prior is not None and prior.outcome != FAILED and _still_there(context, prior):
                self.report.add(context.phase, context.entry, prior, earlier=True)
                self._tick(context.phase, 1)
                tracker.finish(prior, earlier=True)
                continue
            self._slots.acquire()
            if self.fatal is not None:
                self._slots.release()
                self._raise_fatal()
            future = pool.submit(self._import_one, context, obj)
            future.add_done_callback(
                functools.partial(self._object_done, context=context, tracker=tracker)
            )
            pending.append(future)

    def _import_one(self, context: _EntryContext, obj: dict[str, Any]) -> ObjectOutcome:
        entry = context.entry
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        if context.not_served:
            state = UNCHECKED if self.options.dry_run else FAILED
            return ObjectOutcome(namespace, name, state, None, context.not_served)
        if self.lock is not None:
            self.lock.check()  # a run that lost its lock stops before its next write
        if self.options.leave_to_gitops and gitops_manager(obj) is not None:
            return ObjectOutcome(namespace, name, LEFT_TO_GITOPS, None)
        key = object_key(entry["group"], entry["kind"], obj)
        existing = context.existing.get((namespace, name))
        if existing is not None and key in self.plan.target_wins:
            return ObjectOutcome(namespace, name, SKIPPED, existing.uid)  # the target's wins
        body = apply_body(obj, entry)
        relinked, dropped = relink(body, key, self.plan.owners, self.uids.get)
        status = context.statuses.get((namespace, name)) if context.statuses else None
        outcome = self.applier.apply(
            entry,
            body,
            existing,
            status=status,
            status_subresource=context.status_subresource,
        )
        if outcome.outcome not in (FAILED, "skipped") and (relinked or dropped):
            self.report.add_owner_refs(relinked, dropped)
        if outcome.uid and key in self.plan.owners.present:
            self.uids[key] = outcome.uid
        return outcome

    def _object_done(
        self, future: Future[ObjectOutcome], context: _EntryContext, tracker: _Batch
    ) -> None:
        self._slots.release()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            if self.fatal is None:
                self.fatal = exc
            return
        outcome = future.result()
        self.report.add(context.phase, context.entry, outcome)
        self._tick(context.phase, 1)
        tracker.finish(outcome)

    def _batch_complete(self, batch: _Batch) -> None:
        phase, folder, part, _index = batch.batch_id
        if batch.failed:
            self._part_failures[(phase, folder, part)] = True
        if self.progress is not None and batch.fresh:
            try:
                if self.lock is not None:
                    self.lock.check()
                self.progress.record_batch(batch.batch_id, batch.outcomes)
            except BaseException as exc:  # a store failure stops the run: nothing unrecorded
                if self.fatal is None:
                    self.fatal = exc

    def _tick(self, phase: str, done: int = 0) -> None:
        if self.on_progress is None:
            return
        with self._count_lock:
            self._done_in_phase += done
            count = self._done_in_phase
        self.on_progress(phase, count, self.plan.total(phase))

    def _raise_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    # -- CRDs and owners -------------------------------------------------------------------

    def _wait_crds(self) -> None:
        """Wait until each imported CRD is Established (or says it never will be)."""
        failed = {f["name"] for f in self.report.failures if f["phase"] == order.CRDS}
        crds = sorted(
            {
                name_of(o)
                for e in self.plan.entries_in(order.CRDS)
                for o in self.reader.iter_objects(e)
                if self.options.scope.admits(e, o)
            }
            - failed
        )
        if self.options.dry_run:
            self.report.crds = {name: "not created (dry run)" for name in crds}
            return
        waited = wait_for_all(
            crds,
            lambda name: self.cluster.request("GET", f"{_CRD_PATH}/{name}"),
            lambda live: readiness("apiextensions.k8s.io", "CustomResourceDefinition", live),
            timeout=self.options.crd_timeout,
            interval=self.options.crd_poll,
        )
        for name, end in waited.items():
            self.report.crds[name] = (
                "Established" if end.readiness.state == READY else end.readiness.reason
            )

    def _conversion_ready(self, entry: ResourceEntry) -> str | None:
        """None when the entry's custom resources can be written without the CRD's conversion
        webhook, or once its service has ready endpoints; else why they cannot be."""
        if self._crds is None:
            self._crds = by_identity(live_crds(self.cluster, self.discovery))
        info = self._crds.get((entry["group"], entry["resource"]))
        if info is None or info.webhook is None:
            return None
        if not info.needs_conversion(entry["version"]):
            self.report.conversion_webhooks[info.name] = (
                f"created at the storage version {entry['version']}: the webhook "
                f"({info.webhook.describe()}) was not needed"
            )
            return None
        hook = info.webhook
        if not hook.service_name:
            self.report.conversion_webhooks[info.name] = (
                f"created at {entry['version']} (stored at {info.storage_version}) through "
                f"the webhook at {hook.url}, which was not checked beforehand"
            )
            return None
        started = time.monotonic()
        path = f"/api/v1/namespaces/{hook.service_namespace}/endpoints/{hook.service_name}"
        end = wait_for(
            lambda: self._get_or_empty(path),
            endpoints_ready,
            timeout=self.options.webhook_timeout,
            interval=self.options.crd_poll * 5,
        )
        waited = time.monotonic() - started
        if end.ready:
            self.report.conversion_webhooks[info.name] = (
                f"created at {entry['version']} (stored at {info.storage_version}): waited "
                f"{waited:.1f}s for the webhook's {hook.describe()} to have ready endpoints"
            )
            return None
        problem = (
            f"creating {entry['resource']} at {entry['version']} needs the conversion webhook "
            f"of CRD {info.name} (it stores {info.storage_version}), and its "
            f"{hook.describe()} {end.readiness.reason}: import the webhook's workload "
            "first, or transform the snapshot to the storage version"
        )
        self.report.conversion_webhooks[info.name] = problem
        return problem

    def _get_or_empty(self, path: str) -> dict[str, Any]:
        """The object at ``path``, or ``{}`` while it does not exist (not yet imported)."""
        try:
            return self.cluster.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return {}
            raise

    def _load_uids(self) -> None:
        """Uids of owners an earlier run created, from its records."""
        if self.progress is None or not self.progress.resumed:
            return
        kinds = {entry_folder(e): (e["group"], e["kind"]) for e in self.plan.entries}
        present = self.plan.owners.present
        for (_phase, folder, _part, _index), outcome in self.progress.outcomes():
            group_kind = kinds.get(folder)
            if group_kind is None or not outcome.uid:
                continue
            key = (*group_kind, outcome.namespace, outcome.name)
            if key in present:
                self.uids[key] = outcome.uid
